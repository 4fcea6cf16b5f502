"""examples/factory_app (tinynotes): the second app the tests deploy, one Gantry did not shape.

It is built by an application factory with arguments, has a blueprint, a static folder at
/assets and a health path of its own (/-/ping), and knows nothing of Gantry.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "examples" / "factory_app"
sys.path.insert(0, str(APP_DIR))

import tinynotes  # noqa: E402


@pytest.fixture
def client():
    return tinynotes.create_app(config_name="testing").test_client()


def test_ping_answers_200_in_plain_text(client):
    response = client.get("/-/ping")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "pong\n"


def test_blueprint_pages(client):
    assert client.get("/").headers["Location"].endswith("/notes/")
    page = client.get("/notes/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Groceries" in text and "/assets/notes.css" in text
    assert "Call the plumber" in client.get("/notes/2").get_data(as_text=True)
    assert client.get("/notes/9").status_code == 404


def test_static_folder_of_its_own(client):
    response = client.get("/assets/notes.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    response.close()


def test_the_factory_argument_picks_the_configuration(monkeypatch):
    monkeypatch.delenv("TINYNOTES_CONFIG", raising=False)
    page = tinynotes.create_app(config_name="production").test_client().get("/notes/")
    assert "configuration: production" in page.get_data(as_text=True)
    assert tinynotes.create_app().config["CONFIG_NAME"] == "development"
    monkeypatch.setenv("TINYNOTES_CONFIG", "production")
    assert tinynotes.create_app().config["CONFIG_NAME"] == "production"
    with pytest.raises(ValueError, match="unknown configuration 'staging'"):
        tinynotes.create_app("staging")


def test_it_knows_nothing_of_gantry():
    for path in (APP_DIR / "tinynotes").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "GANTRY" not in text.upper() and "REVISION" not in text.upper(), path


def pins(path):
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return dict(line.split("==") for line in lines if line)


def test_pins_are_the_sample_apps():
    ours = pins(APP_DIR / "requirements.txt")
    demo = pins(ROOT / "examples" / "flask_demo" / "requirements.txt")
    assert ours and all(demo.get(name) == version for name, version in ours.items()), (ours, demo)
    # The deploy brings the WSGI server, as for the sample app.
    assert "gunicorn" not in {name.lower() for name in ours}


@pytest.fixture
def database(tmp_path, monkeypatch):
    path = tmp_path / "state" / "tinynotes.db"
    monkeypatch.setenv("TINYNOTES_DATABASE", str(path))
    return path


def notes_cli(*args):
    app = tinynotes.create_app(config_name="testing")
    result = app.test_cli_runner().invoke(args=["notes", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_migrations_run_in_order_once(database, client):
    assert client.get("/jobs/").status_code == 503
    assert notes_cli("migrate").splitlines() == ["applied 0001_jobs", "applied 0002_job_worker"]
    assert notes_cli("migrate").strip() == "up to date (2 migrations)"
    assert client.get("/jobs/").get_json() == {
        "migrations": ["0001_jobs", "0002_job_worker"],
        "jobs": [],
    }


def test_a_failed_migration_leaves_the_database_as_it_was(database, monkeypatch, tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_ok.sql").write_text("CREATE TABLE kept (id INTEGER);")
    (folder / "0002_bad.sql").write_text(
        "CREATE TABLE half (id INTEGER); INSERT INTO nowhere VALUES (1);"
    )
    monkeypatch.setattr(
        tinynotes.jobs, "migration_files", lambda: sorted((p.stem, p) for p in folder.iterdir())
    )
    app = tinynotes.create_app(config_name="testing")
    result = app.test_cli_runner().invoke(args=["notes", "migrate"])
    assert result.exit_code != 0
    db = tinynotes.jobs.connect(app)
    assert tinynotes.jobs.applied_migrations(db) == ["0001_ok"]
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "kept" in tables and "half" not in tables


def test_the_timer_queues_and_the_worker_runs_jobs(database, client):
    notes_cli("migrate")
    assert notes_cli("tick").strip() == "queued job 1"
    notes_cli("tick")
    app = tinynotes.create_app(config_name="testing")
    db = tinynotes.jobs.connect(app)
    with app.app_context():
        assert tinynotes.jobs.process_next(db, "w1") == (1, "done", "3 notes")
        assert tinynotes.jobs.process_next(db, "w1")[0] == 2
        assert tinynotes.jobs.process_next(db, "w1") is None
    jobs = client.get("/jobs/").get_json()["jobs"]
    states = [(j["id"], j["state"], j["worker"]) for j in jobs]
    assert states == [(2, "done", "w1"), (1, "done", "w1")]


def test_the_worker_finishes_and_stops_on_sigterm(database):
    notes_cli("migrate")
    notes_cli("tick")
    env = dict(os.environ, TINYNOTES_DATABASE=str(database), PYTHONPATH=str(APP_DIR))
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "tinynotes:create_app('testing')",
         "notes", "work", "--idle", "0.1"],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        app = tinynotes.create_app(config_name="testing")
        db = tinynotes.jobs.connect(app)
        while db.execute("SELECT state FROM jobs WHERE id = 1").fetchone()[0] != "done":
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert "job 1 done: 3 notes" in err and "stopped" in err
