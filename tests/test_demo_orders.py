"""The demo app's orders: a database that outlives releases, its schema kept by migrations
that ship in the package and that the deploy's release phase runs (`flask db upgrade`)."""

import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from unittest import mock

import flask_migrate
import pytest
import sqlalchemy as sa

DEMO_DIR = Path(__file__).resolve().parents[1] / "examples" / "flask_demo"
sys.path.insert(0, str(DEMO_DIR))

import gantry_demo  # noqa: E402
from gantry_demo import settings  # noqa: E402

MIGRATION_FILES = {
    "gantry_demo/migrations/alembic.ini",
    "gantry_demo/migrations/env.py",
    "gantry_demo/migrations/script.py.mako",
    "gantry_demo/migrations/versions/0001_orders.py",
    "gantry_demo/migrations/versions/0002_order_fulfilment.py",
}
# The newest migration: what a migrated database reports as its schema.
HEAD = "0002"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    with mock.patch.dict(os.environ):
        for key in ("DATABASE_URL", "STATE_DIRECTORY", "SECRET_KEY", "FLASK_DEBUG"):
            os.environ.pop(key, None)
        monkeypatch.chdir(tmp_path)
        yield


@pytest.fixture
def state_dir(tmp_path):
    """The app as systemd starts it: StateDirectory= exported, no DATABASE_URL."""
    state = tmp_path / "state"
    state.mkdir()
    os.environ["STATE_DIRECTORY"] = str(state)
    return state


def migrated_app():
    app = gantry_demo.create_app({"TESTING": True})
    with app.app_context():
        flask_migrate.upgrade()
    return app


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db/shop", "postgresql+psycopg://u:p@db/shop"),
        ("postgresql://u:p@db:5433/shop", "postgresql+psycopg://u:p@db:5433/shop"),
        ("postgresql+psycopg://u@db/shop", "postgresql+psycopg://u@db/shop"),
        ("sqlite:////srv/data/shop.db", "sqlite:////srv/data/shop.db"),
    ],
)
def test_database_url_picks_the_driver_the_app_ships(url, expected):
    assert settings.database_uri({"DATABASE_URL": url, "STATE_DIRECTORY": "/var/lib/x"}) == expected


def test_without_database_url_sqlite_lives_in_the_state_directory():
    # systemd lists several directories with colons when a unit has several.
    environ = {"STATE_DIRECTORY": "/var/lib/gantry-demo:/var/lib/other"}
    assert settings.database_uri(environ) == "sqlite:////var/lib/gantry-demo/gantry-demo.sqlite3"
    assert settings.database_uri({"DATABASE_URL": " "}) == "sqlite:///gantry-demo.sqlite3"


def test_upgrade_creates_the_schema_in_the_state_directory(state_dir):
    app = migrated_app()
    assert (state_dir / settings.SQLITE_FILE).is_file()
    assert app.test_client().get("/orders/").get_json() == {
        "schema": HEAD,
        "count": 0,
        "orders": [],
    }


def test_models_match_the_migrations(state_dir):
    app = migrated_app()
    with app.app_context():
        # Alembic's check compares the models with the migrated database: a model change
        # without its migration fails here rather than in a release phase.
        flask_migrate.check()


def test_check_fails_when_models_and_database_differ(state_dir):
    app = migrated_app()
    with app.app_context():
        with app.extensions["migrate"].db.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE orders"))
        with pytest.raises(SystemExit):
            flask_migrate.check()


def test_downgrade_to_base_and_back(state_dir):
    app = migrated_app()
    with app.app_context():
        flask_migrate.downgrade(revision="base")
        assert "orders" not in sa.inspect(app.extensions["migrate"].db.engine).get_table_names()
        flask_migrate.upgrade()
    assert app.test_client().get("/orders/").get_json()["schema"] == HEAD


def test_orders_are_stored_and_listed_newest_first(state_dir):
    client = migrated_app().test_client()
    first = client.post("/orders/", json={"sku": "ES-002", "quantity": 2})
    assert first.status_code == 201
    assert first.get_json()["order"]["sku"] == "ES-002"
    client.post("/orders/", json={"sku": "CB-001"})
    # Another app on the same database (another worker, another host) sees them.
    listing = migrated_app().test_client().get("/orders/").get_json()
    assert listing["count"] == 2
    assert [(o["sku"], o["quantity"]) for o in listing["orders"]] == [("CB-001", 1), ("ES-002", 2)]


@pytest.mark.parametrize(
    "body",
    [
        {"sku": "NOPE"},
        {"sku": {"not": "a string"}},
        {"sku": "ES-002", "quantity": 0},
        {"sku": "ES-002", "quantity": 100},
        {"sku": "ES-002", "quantity": "2"},
        {"sku": "ES-002", "quantity": True},
        None,
    ],
)
def test_bad_orders_are_refused_and_not_stored(state_dir, body):
    client = migrated_app().test_client()
    response = client.post("/orders/", json=body) if body is not None else client.post("/orders/")
    assert response.status_code == 400
    assert client.get("/orders/").get_json()["count"] == 0


def test_pages_without_the_database_do_not_need_it(tmp_path):
    # The health path and the home page answer before any migration ran.
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp_path / 'absent' / 'no.db'}"
    client = gantry_demo.create_app({"TESTING": True}).test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200


def flask_environ(app_path):
    """The environment a release phase or a process unit gives the ``flask`` command."""
    environ = {"FLASK_APP": "gantry_demo.wsgi", "SECRET_KEY": "x", "PYTHONPATH": str(app_path)}
    return {**os.environ, **environ}


FLASK = str(Path(sys.executable).parent / "flask")


def flask_db_upgrade(app_path, cwd):
    """``flask db upgrade`` as the release phase runs it: FLASK_APP set, the working
    directory the release's, the app importable from ``app_path``."""
    return subprocess.run(
        [FLASK, "db", "upgrade"],
        cwd=cwd,
        env=flask_environ(app_path),
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_flask_command_runs_the_packaged_migrations(state_dir, tmp_path):
    proc = flask_db_upgrade(DEMO_DIR, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Running upgrade  -> 0001" in proc.stderr
    assert f"Running upgrade 0001 -> {HEAD}" in proc.stderr


def test_the_wheel_carries_the_migrations(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path),
            str(DEMO_DIR),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("gantry_demo-*.whl")
    assert MIGRATION_FILES <= set(zipfile.ZipFile(wheel).namelist())


@pytest.mark.parametrize("error", ["RuntimeError", "ValueError"])
def test_a_failed_migration_says_why(state_dir, tmp_path, error):
    # Flask-Migrate reports a RuntimeError through its own logger, other errors as a
    # traceback: the release phase's failure message shows either.
    app_dir = tmp_path / "app"
    shutil.copytree(DEMO_DIR / "gantry_demo", app_dir / "gantry_demo")
    (app_dir / "gantry_demo/migrations/versions/9999_fails.py").write_text(
        f'revision = "9999"\ndown_revision = "{HEAD}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        f'def upgrade():\n    raise {error}("cannot migrate")\n'
    )
    proc = flask_db_upgrade(app_dir, tmp_path)
    assert proc.returncode == 1
    assert "cannot migrate" in proc.stderr and f"Running upgrade {HEAD} -> 9999" in proc.stderr


def test_the_worker_fulfils_waiting_orders_once_each(state_dir):
    app = migrated_app()
    client = app.test_client()
    for sku in ("ES-002", "CB-001", "ES-002"):
        client.post("/orders/", json={"sku": sku})
    with app.app_context():
        assert gantry_demo.orders.fulfil_waiting("host-a", limit=2) == [1, 2]
        assert gantry_demo.orders.fulfil_waiting("host-b") == [3]
        assert gantry_demo.orders.fulfil_waiting("host-b") == []
    listed = {o["id"]: o for o in client.get("/orders/").get_json()["orders"]}
    assert [listed[i]["fulfilled_by"] for i in (1, 2, 3)] == ["host-a", "host-a", "host-b"]
    assert all(listed[i]["fulfilled_at"] for i in (1, 2, 3))


def test_the_report_counts_what_waits(state_dir):
    app = migrated_app()
    app.test_client().post("/orders/", json={"sku": "ES-002"})
    app.test_client().post("/orders/", json={"sku": "CB-001"})
    with app.app_context():
        gantry_demo.orders.fulfil_waiting("host-a", limit=1)
    result = app.test_cli_runner().invoke(args=["orders", "report"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("orders: 2, waiting: 1, oldest waiting ")


def test_the_worker_process_finishes_its_batch_on_sigterm(state_dir, tmp_path):
    # As systemd stops it: SIGTERM, then the worker exits 0 on its own.
    app = migrated_app()
    app.test_client().post("/orders/", json={"sku": "ES-002"})
    worker = subprocess.Popen(
        [FLASK, "orders", "work", "--interval", "0.2"],
        cwd=tmp_path,
        env=flask_environ(DEMO_DIR),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "fulfilling orders" in worker.stdout.readline()
        assert worker.stdout.readline().strip() == "fulfilled order 1"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
    finally:
        worker.kill()
    assert worker.stdout.read().strip() == "worker stopped"
