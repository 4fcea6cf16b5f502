"""gantry_wsgi_app is read as Gunicorn 26 reads it, by one piece of code everywhere.

plugins/module_utils/gantry_wsgi_entry_point.py is checked over entry points Gunicorn
accepts and refuses, against Gunicorn's own gunicorn.util.import_app when Gunicorn is
importable (requirements.txt pins the version the deploy installs), then through the
Jinja test and filter the validate tasks use, and through flask_static_folders.py.
"""

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED = ROOT / "plugins" / "module_utils" / "gantry_wsgi_entry_point.py"
FOLDERS_SCRIPT = ROOT / "roles" / "s3_static" / "files" / "flask_static_folders.py"
FACTORY_APP = ROOT / "examples" / "factory_app"


def load_shared():
    spec = importlib.util.spec_from_file_location("gantry_test_wsgi_entry_point", SHARED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entry_points = load_shared()

# (entry point, module, name, args, kwargs): args None for a name, not a call.
ACCEPTED = [
    ("shop", "shop", "application", None, None),
    ("shop.wsgi", "shop.wsgi", "application", None, None),
    ("shop:app", "shop", "app", None, None),
    ("shop.wsgi:app", "shop.wsgi", "app", None, None),
    ("shop:create_app()", "shop", "create_app", (), {}),
    ("shop:create_app('prod')", "shop", "create_app", ("prod",), {}),
    ("shop:create_app(config_name='production')", "shop", "create_app", (),
     {"config_name": "production"}),
    ("shop:create_app('prod', debug=False)", "shop", "create_app", ("prod",), {"debug": False}),
    ('shop.wsgi:create_app("it\'s", None, workers=2, ratio=-0.5)', "shop.wsgi", "create_app",
     ("it's", None), {"workers": 2, "ratio": -0.5}),
    ("shop:create_app((1, 2), [3], {'a': {'b': True}}, b'raw')", "shop", "create_app",
     ((1, 2), [3], {"a": {"b": True}}, b"raw"), {}),
    # What Python's parser lets through, Gunicorn does too.
    ("shop:app ", "shop", "app", None, None),
    ("shop:(app)", "shop", "app", None, None),
    ("shop:create_app(\n'prod')", "shop", "create_app", ("prod",), {}),
    ("_shop_2.wsgi_:_app", "_shop_2.wsgi_", "_app", None, None),
]

# (entry point, a fragment of the reason given)
REFUSED = [
    ("shop:", "not a name or a call"),
    ("shop: app", "not a name or a call"),
    ("shop:app.wsgi_app", "no attribute paths"),
    ("shop:apps['main']", "no attribute paths"),
    ("shop:True", "no attribute paths"),
    ("shop:lambda: app", "no attribute paths"),
    ("shop:factory.create_app()", "factory must be a plain name"),
    ("shop:create_app()()", "factory must be a plain name"),
    ("shop:create_app(os.environ)", "other than literals"),
    ("shop:create_app(config)", "other than literals"),
    ("shop:create_app(dict(a=1))", "other than literals"),
    ("shop:create_app(*['prod'])", "other than literals"),
    ("shop:create_app({[]: 1})", "other than literals"),
    ("shop:create_app(**{'debug': True})", "unpacks keyword arguments"),
    ("shop:create_app(", "not a name or a call"),
    ("shop:app\x00", "not a name or a call"),
]

# Gunicorn hands the module to importlib, which finds these only as files of that name on
# sys.path, never as a package pip installed: refused, and not compared with Gunicorn.
REFUSED_MODULES = ["", ":app", "my-shop:app", ".shop:app", "shop.:app", "shop..wsgi:app",
                   "shop wsgi:app", "shop/wsgi.py:app", "1shop:app"]


@pytest.mark.parametrize(("value", "module", "name", "args", "kwargs"), ACCEPTED,
                         ids=[case[0] for case in ACCEPTED])
def test_accepted(value, module, name, args, kwargs):
    entry = entry_points.parse(value)
    assert (entry.module, entry.name, entry.args, entry.kwargs) == (module, name, args, kwargs)
    assert entry.is_call == (args is not None)
    assert entry_points.problem(value) == ""


@pytest.mark.parametrize(("value", "reason"), REFUSED, ids=[case[0] for case in REFUSED])
def test_refused_with_its_reason_and_the_accepted_forms(value, reason):
    with pytest.raises(entry_points.EntryPointError, match="."):
        entry_points.parse(value)
    message = entry_points.problem(value)
    assert reason in message
    assert message.endswith(entry_points.FORMS)
    assert "module:factory(" in message and "myapp.wsgi:app" in message


@pytest.mark.parametrize("value", REFUSED_MODULES)
def test_module_must_be_a_dotted_python_name(value):
    assert "dotted Python name" in entry_points.problem(value)


@pytest.mark.parametrize("value", [None, 5, ["shop:app"]])
def test_not_a_string(value):
    assert "must be a string" in entry_points.problem(value)


# Stand-ins for the app's modules, so Gunicorn's loader runs to its end on every case.
@pytest.fixture
def fake_modules(monkeypatch):
    calls = []

    def wsgi(environ, start_response):
        return []

    def create_app(*args, **kwargs):
        calls.append((args, kwargs))
        return wsgi

    for name in ["shop", "shop.wsgi", "_shop_2", "_shop_2.wsgi_"]:
        module = types.ModuleType(name)
        module.app = module.application = module._app = wsgi
        module.apps = {"main": wsgi}
        module.create_app = create_app
        module.factory = types.SimpleNamespace(create_app=create_app)
        monkeypatch.setitem(sys.modules, name, module)
    return wsgi, calls


@pytest.mark.parametrize("value", [case[0] for case in ACCEPTED + REFUSED])
def test_gunicorn_agrees(fake_modules, value):
    util = pytest.importorskip("gunicorn.util")
    wsgi, calls = fake_modules
    try:
        gunicorn_app = util.import_app(value)
    except Exception:  # noqa: BLE001 - any failure is a refusal, whatever its type
        gunicorn_app = None
    gunicorn_calls = list(calls)
    calls.clear()
    if gunicorn_app is None:
        assert entry_points.problem(value) != "", f"Gunicorn refuses {value!r}, we accept it"
        return
    assert entry_points.problem(value) == "", f"Gunicorn accepts {value!r}, we refuse it"
    # Loaded the same way: the same object, the factory called with the same arguments.
    assert entry_points.load(value) is gunicorn_app is wsgi
    assert calls == gunicorn_calls


def test_load_says_what_is_missing_or_wrong(fake_modules, monkeypatch):
    with pytest.raises(entry_points.EntryPointError, match="has no attribute 'missing'"):
        entry_points.load("shop:missing")
    monkeypatch.setattr(sys.modules["shop"], "application", None)
    with pytest.raises(entry_points.EntryPointError, match="gave None"):
        entry_points.load("shop")
    monkeypatch.setattr(sys.modules["shop"], "app", "not callable")
    with pytest.raises(entry_points.EntryPointError, match="not callable"):
        entry_points.load("shop:app")


# The validate tasks' Jinja test and filter, through ansible-playbook with the project's
# ansible.cfg: they give what the shared code gives.
def test_jinja_test_and_filter_agree_with_the_shared_code(tmp_path):
    values = [case[0] for case in ACCEPTED + REFUSED] + REFUSED_MODULES
    play = [{
        "name": "Read entry points",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [{
            "name": "Show",
            "ansible.builtin.debug": {"msg": {
                "accepted": "{{ values | select('gantry.deploy.gantry_wsgi_entry_point') | list }}",
                "errors": "{{ values | map('gantry.deploy.gantry_wsgi_entry_point_error')"
                          " | list }}",
            }},
        }],
    }]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    (tmp_path / "vars.json").write_text(json.dumps({"values": values}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
         "-e", f"@{tmp_path / 'vars.json'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    msg = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert msg["accepted"] == [case[0] for case in ACCEPTED]
    assert msg["errors"] == [entry_points.problem(value) for value in values]


# flask_static_folders.py loads the app with the same file, so a factory with arguments
# is called as Gunicorn will call it.
def list_folders(app):
    return subprocess.run(
        [sys.executable, str(FOLDERS_SCRIPT), app],
        env=dict(os.environ, PYTHONPATH=str(FACTORY_APP)),
        capture_output=True, text=True, timeout=120)


def test_static_folders_script_uses_the_shared_code():
    spec = importlib.util.spec_from_file_location("gantry_test_folders", FOLDERS_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.ENTRY_POINTS == SHARED
    assert script.entry_points().FORMS == entry_points.FORMS


def test_static_folders_of_a_factory_called_with_arguments():
    proc = list_folders("tinynotes:create_app(config_name='production')")
    assert proc.returncode == 0, proc.stderr
    folders = json.loads(proc.stdout)["folders"]
    assert folders == [{"path": str(FACTORY_APP / "tinynotes" / "static"),
                        "url_path": "/assets", "endpoint": "static"}]


def test_static_folders_fail_where_gunicorn_would():
    proc = list_folders("tinynotes:create_app(os.environ)")
    assert proc.returncode != 0
    assert "other than literals" in proc.stderr
    # A module alone means its application, as for Gunicorn (this script used to take app).
    proc = list_folders("tinynotes")
    assert proc.returncode != 0
    assert "has no attribute 'application'" in proc.stderr
    # The factory's own refusal reaches the operator too.
    proc = list_folders("tinynotes:create_app('staging')")
    assert proc.returncode != 0
    assert "unknown configuration 'staging'" in proc.stderr


def test_the_gunicorn_compared_with_is_the_one_deployed():
    defaults = yaml.safe_load((ROOT / "roles" / "flask_app" / "defaults" / "main.yml").read_text())
    deployed = [r for r in defaults["flask_app_server_requirements"] if r.startswith("gunicorn")]
    tooling = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
               if line.startswith("gunicorn")]
    assert len(deployed) == 1 and deployed == tooling
