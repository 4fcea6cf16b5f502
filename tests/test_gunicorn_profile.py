"""Role gunicorn on the controller: what each gunicorn_profile writes in gunicorn.conf.py.

The template is rendered with the role's defaults and vars for a 2-core host, then run
as Python, as Gunicorn reads it. bench/serve/README.md has the measurements behind the
profiles; this checks the settings that carry them.
"""

from pathlib import Path

import pytest
from gantry_plays import role_play, run_play

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "gunicorn"
FACTS = {"processor_vcpus": 2, "memtotal_mb": 4096}


def render(tmp_path, **extra):
    out = tmp_path / "gunicorn.conf.py"
    play = role_play(ROLE, [{
        "name": "Render",
        "ansible.builtin.template": {"src": str(ROLE / "templates" / "gunicorn.conf.py.j2"),
                                     "dest": str(out), "mode": "0644"},
        "vars": {"ansible_facts": FACTS},
    }])
    rc, output = run_play(tmp_path, play, {"gantry_app_name": "shop",
                                           "gantry_wsgi_app": "shop.wsgi:app"} | extra)
    assert rc == 0, output
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
