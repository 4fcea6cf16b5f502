"""Flask-DebugToolbar in the local environment: the hook the gunicorn role pastes into
gunicorn.conf.py (roles/gunicorn/templates/debug_toolbar.py), on apps Gantry did not
write and on the sample app, in the rendered config, under a real Gunicorn; and the
package the flask_app role adds to the release."""

import json
import logging
import runpy
import sys
from pathlib import Path

import pytest
import yaml
from gantry_plays import (
    gunicorn_serving,
    load_module,
    render_gunicorn_config,
    role_play,
    run_play,
    unix_get,
)

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "gunicorn"
BIN = Path(sys.executable).parent
# What the toolbar adds to an HTML page: its panel and its own static files.
TOOLBAR_MARK = 'id="flDebug"'


enable_debug_toolbar = load_module(ROLE / "templates" / "debug_toolbar.py").enable_debug_toolbar

# A shop of someone else's: a page, a JSON answer, a redirect after a form.
SHOP_APP = '''
from flask import Flask, redirect

app = Flask(__name__)
app.config["SECRET_KEY"] = "not-gantrys"


@app.get("/")
def home():
    return "<!doctype html><html><body><h1>Shop</h1></body></html>"


@app.get("/api/stock")
def stock():
    return {"apples": 3}


@app.post("/basket")
def basket():
    return redirect("/")
'''


def shop_app():
    namespace = {"__name__": "shop"}
    exec(SHOP_APP, namespace)  # noqa: S102 - the test's own app, also served from shop.py
    return namespace["app"]


def test_pages_get_the_toolbar_and_other_answers_stay_as_they_were(caplog):
    app = shop_app()
    enable_debug_toolbar(app, logging.getLogger("test"))
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert TOOLBAR_MARK in page and "<h1>Shop</h1>" in page
    assert client.get("/api/stock").get_json() == {"apples": 3}
    # A redirect stays one: the toolbar's interception page is turned off.
    answer = client.post("/basket")
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    static = page.split('src="', 1)[1].split('"', 1)[0]
    assert static.startswith("/_debug_toolbar/static/")
    assert client.get(static).status_code == 200
    assert not caplog.records


def test_the_sample_app_gets_it_too(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "flask_demo"))
    from gantry_demo import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "test"})
    enable_debug_toolbar(app, logging.getLogger("test"))
    assert TOOLBAR_MARK in app.test_client().get("/").get_data(as_text=True)


def test_an_app_without_secret_key_serves_without_it(caplog, monkeypatch):
    # examples/factory_app sets no SECRET_KEY: the toolbar needs one, the app does not.
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "factory_app"))
    import tinynotes

    app = tinynotes.create_app(config_name="production")
    with caplog.at_level(logging.WARNING):
        enable_debug_toolbar(app, logging.getLogger("test"))
    assert "SECRET_KEY" in caplog.text
    page = app.test_client().get("/notes/")
    assert page.status_code == 200 and TOOLBAR_MARK not in page.get_data(as_text=True)


def test_an_entry_point_that_is_not_a_flask_app_is_named_in_the_log(caplog):
    def plain_wsgi(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    with caplog.at_level(logging.WARNING):
        enable_debug_toolbar(plain_wsgi, logging.getLogger("test"))
    assert "not a Flask app" in caplog.text and "function" in caplog.text


def render_config(tmp_path, extra):
    return render_gunicorn_config(tmp_path, {"gantry_environment": "local"} | extra)


class Worker:
    def __init__(self, wsgi):
        self.wsgi = wsgi
        self.log = logging.getLogger("worker")


def test_the_config_adds_the_toolbar_before_the_profiler_wraps_the_app(tmp_path):
    directory = tmp_path / "profiles"
    config = render_config(tmp_path, {"gantry_debug_toolbar": True, "gunicorn_profiling_rate": 1,
                                      "gunicorn_profiling_dir": str(directory)})
    settings = runpy.run_path(str(config))
    app = shop_app()
    worker = Worker(app)
    settings["post_worker_init"](worker)
    assert type(worker.wsgi).__name__ == "RequestProfiler" and worker.wsgi.app is app
    assert TOOLBAR_MARK in app.test_client().get("/").get_data(as_text=True)


def test_the_config_has_neither_without_the_switches(tmp_path):
    settings = runpy.run_path(str(render_config(tmp_path, {})))
    assert "post_worker_init" not in settings and "enable_debug_toolbar" not in settings


def test_gunicorn_serves_the_toolbar_with_the_rendered_config(tmp_path):
    if not (BIN / "gunicorn").exists():
        pytest.skip("gunicorn is not installed beside this Python")
    config = render_config(tmp_path, {"gantry_debug_toolbar": True})
    (tmp_path / "shop.py").write_text(SHOP_APP)
    with gunicorn_serving(config, tmp_path,
                          env={"GANTRY_CHECK_RELEASE_DIR": str(tmp_path)}) as (sock, output):
        status, page = unix_get(sock, "/")
        assert status == 200 and TOOLBAR_MARK in page
        assert unix_get(sock, "/api/stock") == (200, '{"apples":3}\n')
    assert "Flask-DebugToolbar is off" not in output[0], output


def release_extras(tmp_path, extra):
    role = ROOT / "roles" / "flask_app"
    tasks = [{"name": "Write what the build installs beside the app",
              "ansible.builtin.copy": {"content": "{{ __flask_app_extras | to_json }}",
                                       "dest": str(tmp_path / "extras.json"), "mode": "0644"}}]
    rc, output = run_play(tmp_path, role_play(role, tasks), {"gantry_app_name": "shop"} | extra)
    assert rc == 0, output
    return json.loads((tmp_path / "extras.json").read_text())


def test_the_release_gets_the_package_only_with_the_switch(tmp_path):
    pinned = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.lower().startswith("flask-debugtoolbar==")]
    off = release_extras(tmp_path / "off", {})
    # The tests above ran the version the hosts get.
    assert release_extras(tmp_path / "on", {"gantry_debug_toolbar": True}) == off + pinned
    assert not [r for r in off if "toolbar" in r]
    for environment in ["staging", "production"]:
        inventory = yaml.safe_load(
            (ROOT / "inventories" / environment / "group_vars" / "all" / "main.yml").read_text())
        assert not inventory.get("gantry_debug_toolbar")
