"""Role gunicorn with an application factory called with arguments: the entry point reaches
Gunicorn intact, through gunicorn.conf.py, and never through the unit.

The templates are rendered by ansible-playbook with the role's defaults and vars, for a
2-core host; gunicorn.conf.py is then run as Python, as Gunicorn reads it, and, where
Gunicorn is importable, loaded by ``gunicorn --check-config`` as the deploy's pre-switch
check (roles/flask_release/tasks/check.yml) loads it, with examples/factory_app.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gantry_plays import role_play, run_play

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "gunicorn"
BIN = Path(sys.executable).parent
FACTS = {"processor_vcpus": 2, "memtotal_mb": 4096}
FACTORY_APP = ROOT / "examples" / "factory_app"
VERIFY_UNIT = ROLE / "files" / "verify_unit.py"

# Quotes of both kinds, a backslash, a non-ASCII letter, a dict: what JSON and Python
# string literals must both carry unchanged into gunicorn.conf.py.
TRICKY = ("shop.wsgi:create_app('it\\'s', \"say \\\"hi\\\"\", root='C:\\\\srv', "
          "name='café', limits={'rps': 5}, debug=False)")


def load_shared():
    path = ROOT / "plugins" / "module_utils" / "gantry_wsgi_entry_point.py"
    spec = importlib.util.spec_from_file_location("gantry_test_wsgi_entry_point_role", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(tmp_path, entry_points):
    """{entry point: (gunicorn.conf.py text, unit text)}, from one ansible-playbook run."""
    tasks = []
    for index, entry_point in enumerate(entry_points):
        for template in ["gunicorn.conf.py", "gunicorn.service"]:
            tasks.append({
                "name": f"Render {template} {index}",
                "ansible.builtin.template": {
                    "src": str(ROLE / "templates" / f"{template}.j2"),
                    "dest": str(tmp_path / f"{index}-{template}"), "mode": "0644"},
                "vars": {"ansible_facts": FACTS, "gantry_wsgi_app": entry_point},
            })
    rc, output = run_play(tmp_path, role_play(ROLE, tasks), {"gantry_app_name": "shop"})
    assert rc == 0, output
    return {entry_point: ((tmp_path / f"{index}-gunicorn.conf.py").read_text(),
                          (tmp_path / f"{index}-gunicorn.service").read_text())
            for index, entry_point in enumerate(entry_points)}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    entry_points = ["shop.wsgi:app", TRICKY, "tinynotes:create_app(config_name='production')"]
    return render(tmp_path_factory.mktemp("render"), entry_points)


def settings_of(conf_text):
    settings = {}
    exec(conf_text, settings)  # noqa: S102 - the file Gunicorn itself executes
    return settings


def test_the_config_carries_the_factory_and_its_arguments_unchanged(rendered):
    conf, _ = rendered[TRICKY]
    assert settings_of(conf)["wsgi_app"] == TRICKY
    entry = load_shared().parse(settings_of(conf)["wsgi_app"])
    assert entry.name == "create_app"
    assert entry.args == ("it's", 'say "hi"')
    assert entry.kwargs == {"root": "C:\\srv", "name": "café", "limits": {"rps": 5},
                            "debug": False}


def test_the_unit_never_carries_the_entry_point(rendered):
    plain_unit = rendered["shop.wsgi:app"][1]
    _, unit = rendered[TRICKY]
    # Nothing of the entry point reaches systemd's quoting: the unit is the same whatever it is.
    assert unit == plain_unit
    exec_start = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(exec_start) == 1
    assert exec_start[0].endswith("-m gunicorn --config /etc/shop/instances/%i/gunicorn.conf.py")


def test_systemd_accepts_the_unit(rendered, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze here")
    unit = tmp_path / "unit"
    unit.write_text(rendered[TRICKY][1])
    proc = subprocess.run([sys.executable, str(VERIFY_UNIT), str(unit), "shop@.service",
                           "/srv/shop"], capture_output=True, text=True, timeout=180)
    if "cannot run systemd-analyze" in proc.stderr or "Failed to " in proc.stderr:
        pytest.skip(f"systemd-analyze cannot verify units here: {proc.stderr[:300]}")
    assert proc.returncode == 0, proc.stderr


def check_config(rendered, tmp_path, entry_point):
    """gunicorn --check-config on the rendered config, as the pre-switch check runs it."""
    pytest.importorskip("gunicorn")
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(rendered[entry_point][0])
    # The release directory: the config chdirs there and Gunicorn imports from it.
    env = dict(os.environ, GANTRY_CHECK_RELEASE_DIR=str(FACTORY_APP))
    env.pop("TINYNOTES_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", f"--config={conf}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_gunicorn_loads_the_factory_from_the_rendered_config(rendered, tmp_path):
    proc = check_config(rendered, tmp_path, "tinynotes:create_app(config_name='production')")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gunicorn_check_fails_when_the_factory_refuses_its_arguments(tmp_path):
    (tmp_path / "render").mkdir()
    bad = "tinynotes:create_app(config_name='staging')"
    proc = check_config(render(tmp_path / "render", [bad]), tmp_path, bad)
    assert proc.returncode != 0
    assert "unknown configuration 'staging'" in proc.stdout + proc.stderr
