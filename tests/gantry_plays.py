"""Run a play on the controller with ansible-playbook, as the role tests do.

The plays run against localhost with this checkout's ansible.cfg (plugins, roles), their
modules with the Python running the tests, and extra vars passed as a JSON file (so
values keep their types).
"""

import json
import os
import subprocess
import sys
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
