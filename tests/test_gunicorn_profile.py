"""Role gunicorn on the controller: what each gunicorn_profile writes in gunicorn.conf.py.

The template is rendered with the role's defaults and vars for a 2-core host, then run
as Python, as Gunicorn reads it. bench/serve/README.md has the measurements behind the
profiles; this checks the settings that carry them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "gunicorn"
BIN = Path(sys.executable).parent
FACTS = {"processor_vcpus": 2, "memtotal_mb": 4096}


def render(tmp_path, **extra):
    out = tmp_path / "gunicorn.conf.py"
    play = [{
        "name": "Render",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": [{
            "name": "Render",
            "ansible.builtin.template": {"src": str(ROLE / "templates" / "gunicorn.conf.py.j2"),
                                         "dest": str(out), "mode": "0644"},
            "vars": {"ansible_facts": FACTS},
        }],
    }]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    variables = {"ansible_python_interpreter": sys.executable, "gantry_app_name": "shop",
                 "gantry_wsgi_app": "shop.wsgi:app"} | extra
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
         "-e", f"@{tmp_path / 'vars.json'}"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    settings = {}
    exec(out.read_text(), settings)  # noqa: S102 - the file Gunicorn itself executes
    return settings


@pytest.mark.parametrize(("extra", "expected"), [
    ({}, {"worker_class": "gthread", "threads": 4, "keepalive": 0, "worker_connections": 4,
          "preload_app": False}),
    ({"gunicorn_profile": "io"},
     {"worker_class": "gthread", "threads": 16, "keepalive": 0, "worker_connections": 16,
      "preload_app": False}),
    ({"gunicorn_profile": "mixed"},
     {"worker_class": "gthread", "threads": 4, "keepalive": 0, "worker_connections": 4,
      "preload_app": False}),
    ({"gunicorn_profile": "cpu"},
     {"worker_class": "sync", "threads": 1, "keepalive": 0, "preload_app": True}),
    # An explicit input wins over the profile; with keep-alive, no cap on connections.
    ({"gunicorn_profile": "cpu", "gunicorn_threads": 8},
     {"worker_class": "gthread", "threads": 8, "keepalive": 0, "worker_connections": 8}),
    ({"gunicorn_keepalive": 5}, {"worker_class": "gthread", "threads": 4, "keepalive": 5}),
    ({"gunicorn_worker_class": "gevent", "gunicorn_profile": "io"},
     {"worker_class": "gevent", "threads": 1, "keepalive": 0}),
    ({"gunicorn_profile": "cpu", "gunicorn_preload_app": False}, {"preload_app": False}),
    ({"gunicorn_profile": "io", "gunicorn_preload_app": True},
     {"preload_app": True, "worker_connections": 16}),
], ids=["default", "io", "mixed", "cpu", "threads-override", "keepalive-override", "gevent",
        "preload-off", "preload-on"])
def test_profile_settings(tmp_path, extra, expected):
    settings = render(tmp_path, **extra)
    # 2 cores * 2 + 1; the cpu profile 2 cores * 1 + 1, as the seed's config on 2 cores.
    assert settings["workers"] == (3 if extra.get("gunicorn_profile") == "cpu" else 5)
    assert settings["max_requests"] == 1000
    for key, value in expected.items():
        assert settings[key] == value, (key, settings.get(key))
    if "worker_connections" not in expected:
        assert "worker_connections" not in settings


def test_an_explicit_workers_per_core_wins_over_the_profile(tmp_path):
    settings = render(tmp_path, gunicorn_profile="cpu", gunicorn_workers_per_core=2)
    assert settings["workers"] == 5
