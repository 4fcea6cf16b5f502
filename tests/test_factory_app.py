"""examples/factory_app (tinynotes): the second app the tests deploy, one Gantry did not shape.

It is built by an application factory with arguments, has a blueprint, a static folder at
/assets and a health path of its own (/-/ping), and knows nothing of Gantry.
"""

import sys
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
