"""Run a play on the controller with ansible-playbook, as the role tests do.

The plays run against localhost with this checkout's ansible.cfg (plugins, roles), their
modules with the Python running the tests, and extra vars passed as a JSON file (so
values keep their types).
"""

import contextlib
import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_play(tmp_path, play, extra, *args):
    """Run play (a list of plays) with extra vars; return (exit code, stdout + stderr)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    extra = {"ansible_python_interpreter": sys.executable} | extra
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    args = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook),
            "-e", f"@{tmp_path / 'vars.json'}", *args]
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def role_play(role, tasks):
    """A play of tasks that see role's defaults and vars, as its own tasks do."""
    return [{
        "name": "Render",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [str(role / "defaults" / "main.yml"), str(role / "vars" / "main.yml")],
        "tasks": tasks,
    }]


def load_module(path):
    """A Python file of a role (a template pasted into a config, a file it runs), imported
    under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"gantry_test_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_gunicorn_config(tmp_path, extra):
    """gunicorn.conf.py as the gunicorn role writes it for a 2-core host, app shop:app.

    The memory watch, on by default, is off unless extra turns it on: the tests of the
    other hooks call them with workers of their own making."""
    role = ROOT / "roles" / "gunicorn"
    tasks = [{
        "name": "Render gunicorn.conf.py",
        "ansible.builtin.template": {"src": str(role / "templates" / "gunicorn.conf.py.j2"),
                                     "dest": str(tmp_path / "gunicorn.conf.py"), "mode": "0644"},
        "vars": {"ansible_facts": {"processor_vcpus": 2, "memtotal_mb": 4096}},
    }]
    variables = {"gantry_app_name": "shop", "gantry_wsgi_app": "shop:app",
                 "gunicorn_memory_watch_seconds": 0} | extra
    rc, output = run_play(tmp_path, role_play(role, tasks), variables)
    assert rc == 0, output
    return tmp_path / "gunicorn.conf.py"


def unix_get(sock, url):
    """(status, body) of GET url from a server on the unix socket sock."""
    connection = http.client.HTTPConnection("localhost", timeout=10)
    connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.sock.connect(str(sock))
    connection.request("GET", url)
    response = connection.getresponse()
    return response.status, response.read().decode()


@contextlib.contextmanager
def gunicorn_serving(config, app_dir, workers=1, env=None):
    """Gunicorn with a rendered gunicorn.conf.py, serving app_dir's app on a unix socket
    once it answers; yields (socket, output) where output (a list) gets Gunicorn's log
    after it stopped."""
    sock = Path(app_dir) / "app.sock"
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", str(config), "--chdir", str(app_dir),
         "--bind", f"unix:{sock}", "--workers", str(workers), "--no-control-socket",
         "--worker-tmp-dir", str(app_dir)],
        cwd=app_dir, env=os.environ | (env or {}),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                unix_get(sock, "/")
                break
            except (FileNotFoundError, ConnectionRefusedError):
                assert server.poll() is None and time.monotonic() < deadline, "no gunicorn"
                time.sleep(0.2)
        yield sock, output
    finally:
        server.terminate()
        output.append(server.communicate(timeout=30)[0])
