"""The failure message of flask_release's pre-switch check: the cause and an excerpt of
the app's start-up output, with the secrets masked (plugins/filter/gantry_check_output.py)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLUGINS = ROOT / "plugins" / "filter"

spec = importlib.util.spec_from_file_location("check_output", PLUGINS / "gantry_check_output.py")
check_output = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_output)

SECRET_KEY = "Zq9-secret-key-8f1e"
DB_PASSWORD = "p@ss/w0rd 'quoted'"
DSN = "postgresql://app:" + DB_PASSWORD + "@db.internal/app"
SECRETS = [SECRET_KEY, DSN, "7", "on"]

# What gunicorn --check-config prints for an app whose import fails (Python 3.11).
SITE = "/srv/app/releases/r2/venv/lib/python3.11/site-packages"
TRACEBACK = f"""
Error while loading the application:

Traceback (most recent call last):
  File "{SITE}/gunicorn/app/base.py", line 207, in run
    self.load()
  File "{SITE}/gunicorn/app/wsgiapp.py", line 57, in load
    return self.load_wsgiapp()
           ^^^^^^^^^^^^^^^^^^^
  File "{SITE}/gunicorn/util.py", line 420, in import_app
    mod = importlib.import_module(module)
          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "<frozen importlib._bootstrap>", line 1206, in _gcd_import
  File "<frozen importlib._bootstrap_external>", line 940, in exec_module
  File "/srv/app/releases/r2/app/db.py", line 7, in <module>
    engine = connect({DSN!r}, key={SECRET_KEY!r})
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/app/releases/r2/app/db.py", line 3, in connect
    raise ConnectionError(f"cannot reach {{dsn}} (key {{key}}, retry 7 on port 5432)")
ConnectionError: cannot reach {DSN} (key {SECRET_KEY}, retry 7 on port 5432)
"""


def test_every_secret_is_masked_and_short_values_are_not():
    masked = check_output.mask_secrets(TRACEBACK, SECRETS)
    assert SECRET_KEY not in masked
    assert DB_PASSWORD not in masked and "w0rd" not in masked
    assert "ConnectionError: cannot reach ******** (key ********, retry 7 on port 5432)" in masked
    # The frame's source line quotes both, as repr did.
    assert """connect("********", key='********')""" in masked
    # "7" and "on" are too short to mask: line numbers and words survive.
    assert 'line 207, in run' in masked and "retry 7 on port" in masked


def test_other_spellings_and_url_passwords_are_masked():
    encoded = "postgresql://app:p%40ss%2Fw0rd%20%27quoted%27@db.internal/app"
    text = (f"url {encoded}\njson {json.dumps(SECRET_KEY)}\n"
            "cache redis://:hunter2-not-listed@cache:6379/0 and amqp://guest:g@st/x@mq/")
    masked = check_output.mask_secrets(text, {"DATABASE_PASSWORD": DB_PASSWORD, "KEY": SECRET_KEY})
    assert masked == ("url postgresql://app:********@db.internal/app\njson \"********\"\n"
                      "cache redis://:********@cache:6379/0 and amqp://guest:********@mq/")


def test_summary_names_the_exception_and_keeps_the_ends_of_the_output():
    summary = check_output.failure_summary(TRACEBACK, SECRETS, head=2, tail=4)
    assert summary["cause"] == (
        "ConnectionError: cannot reach ******** (key ********, retry 7 on port 5432)")
    lines = summary["excerpt"].splitlines()
    assert lines[:2] == ["Error while loading the application:",
                         "Traceback (most recent call last):"]
    assert lines[2] == f"... ({summary['omitted']} lines)"
    assert len(lines) == 2 + 1 + 4 and summary["omitted"] > 0
    assert lines[-1] == summary["cause"]
    # Caret markers and the import machinery's frames are left out, the app's are kept.
    assert not any(set(line.strip()) <= {"^"} for line in lines)
    assert "<frozen" not in summary["excerpt"] and '/app/db.py", line 3' in summary["excerpt"]
    assert SECRET_KEY not in str(summary) and "w0rd" not in str(summary)


def test_summary_of_gunicorn_config_error_and_of_nothing():
    text = ("Invalid value for workers: lots\n\n\n"
            "Error: invalid literal for int() with base 0: 'lots'\n")
    summary = check_output.failure_summary(text, [])
    assert summary["cause"] == "Error: invalid literal for int() with base 0: 'lots'"
    assert summary["omitted"] == 0 and summary["excerpt"].startswith("Invalid value for workers")
    assert check_output.failure_summary("", [SECRET_KEY])["cause"] == "no output"


def test_long_lines_are_cut():
    summary = check_output.failure_summary("ValueError: " + "x" * 1000, [], width=100)
    assert len(summary["cause"]) == 100 and summary["cause"].endswith("...")


def test_the_filters_work_in_ansible(tmp_path):
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"app_env_secrets": {"SECRET_KEY": SECRET_KEY, "DATABASE_URL": DSN, "DEBUG": "1"},
                 "output": TRACEBACK},
        "tasks": [{"ansible.builtin.debug": {
            "msg": "{{ output | gantry.deploy.gantry_failure_summary("
                   "app_env_secrets.values() | list) }}"}}],
    }]))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="json")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(play)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    msg = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert msg["cause"].startswith("ConnectionError: cannot reach ******** (key ********")
    assert SECRET_KEY not in proc.stdout and "w0rd" not in proc.stdout
