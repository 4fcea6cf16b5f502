"""The env_file module writes values python-dotenv reads back unchanged (systemd's side is
checked in molecule's verify, against the running service's environment)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

spec = importlib.util.spec_from_file_location("env_file", ROOT / "plugins/modules/env_file.py")
env_file = importlib.util.module_from_spec(spec)
spec.loader.exec_module(env_file)

TRICKY = {
    "PLAIN": "value",
    "EMPTY": "",
    "SPACES": "two  words ",
    "HASH": "a # not a comment",
    "DOLLAR": "price $5 and $HOME",
    "DOUBLE": 'say "hi"',
    "SINGLE": "it's",
    "BACKSLASH": r"C:\new\table",
    "BOTH": "it's a \\ \"mix\"",
    "UNICODE": "crème brûlée",
    "EQUALS": "a=b=c",
}


def test_dotenv_reads_back_every_value(tmp_path):
    path = tmp_path / "app.env"
    path.write_text(env_file.render(TRICKY))
    assert dotenv_values(path) == TRICKY


def test_no_export_prefix_and_sorted_keys():
    lines = env_file.render({"B": "2", "A": "1"}).splitlines()
    assert lines == ["A='1'", "B='2'"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MULTI": "line\nbreak"}, "MULTI holds a newline"),
        ({"BAD-KEY": "x"}, "'BAD-KEY' is not a valid"),
        ({"EXPANDED": "${HOME}/x"}, "EXPANDED holds"),
    ],
)
def test_values_read_differently_are_refused(env, message):
    with pytest.raises(ValueError, match=message):
        env_file.render(env)


def run_module(tmp_path, args, check=False):
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"gantry.deploy.env_file": args, "register": "result", "no_log": False},
                  {"ansible.builtin.debug": {"var": "result"}}],
    }]))
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(play),
           "-e", f"ansible_python_interpreter={sys.executable}"]
    if check:
        cmd += ["--check", "--diff"]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="json")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    return tasks[0]["hosts"]["localhost"], proc.stdout


def test_module_writes_mode_and_is_idempotent(tmp_path):
    path = tmp_path / "app.env"
    user = os.environ.get("USER") or "root"
    args = {"path": str(path), "env": {"SECRET_KEY": "s3cr3t-value", "A": "1"},
            "owner": user, "group": "root", "mode": "0640"}

    first, _ = run_module(tmp_path, args)
    assert first["changed"] is True
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    second, _ = run_module(tmp_path, args)
    assert second["changed"] is False


def test_check_mode_and_diff_never_show_values(tmp_path):
    path = tmp_path / "app.env"
    path.write_text("SECRET_KEY='old-secret-value'\n")
    args = {"path": str(path), "env": {"SECRET_KEY": "new-secret-value"},
            "owner": "root", "group": "root", "mode": "0640"}
    result, output = run_module(tmp_path, args, check=True)
    assert result["changed"] is True
    assert result["changed_keys"] == ["SECRET_KEY"]
    assert path.read_text() == "SECRET_KEY='old-secret-value'\n"
    assert "new-secret-value" not in output and "old-secret-value" not in output


def test_check_mode_before_the_group_exists_predicts_a_change(tmp_path):
    path = tmp_path / "app.env"
    args = {"path": str(path), "env": {"A": "1"}, "owner": "root",
            "group": "gantry-no-such-group", "mode": "0640"}
    result, _ = run_module(tmp_path, args, check=True)
    assert result["changed"] is True
    assert not path.exists()


def test_backup_keeps_the_replaced_file_only(tmp_path):
    path = tmp_path / "app.env"
    args = {"path": str(path), "env": {"SECRET_KEY": "old-token-4d1c", "DEBUG": "0"},
            "owner": "root", "group": "root", "mode": "0640", "backup": True}
    created, _ = run_module(tmp_path, args)
    assert created["changed"] and "backup_file" not in created  # nothing replaced
    old_inode = path.stat().st_ino

    replaced, output = run_module(tmp_path, dict(args, env={"SECRET_KEY": "new-token-9b7e"}))
    backup = tmp_path / "app.env.previous"
    assert "backup_file" in replaced
    assert backup.read_text() == "DEBUG='0'\nSECRET_KEY='old-token-4d1c'\n"
    assert backup.stat().st_ino == old_inode and backup.stat().st_mode & 0o7777 == 0o640
    assert path.read_text() == "SECRET_KEY='new-token-9b7e'\n"
    assert "old-token-4d1c" not in output and "new-token-9b7e" not in output

    unchanged, _ = run_module(tmp_path, dict(args, env={"SECRET_KEY": "new-token-9b7e"}))
    assert not unchanged["changed"] and "backup_file" not in unchanged
    run_module(tmp_path, dict(args, env={"SECRET_KEY": "third-token-2a6f"}))
    assert backup.read_text() == "SECRET_KEY='new-token-9b7e'\n"
    assert sorted(p.name for p in tmp_path.glob("app.env*")) == ["app.env", "app.env.previous"]


@pytest.mark.parametrize(
    ("mode", "current", "expected"),
    [
        (0o640, None, 0o640),  # YAML's unquoted 0640
        ("0640", None, 0o640),
        ("640", None, 0o640),
        ("0o640", None, 0o640),
        (0o600, None, 0o600),
        ("u=rw,g=r,o=", None, 0o640),
        ("u=rw,g=,o=", 0o644, 0o600),
        ("g+r", 0o600, 0o640),  # symbolic modes apply to the current file's mode
        ("o-r", 0o644, 0o640),
    ],
)
def test_mode_is_read_as_the_file_module_reads_it(mode, current, expected):
    assert env_file.parse_mode(mode, current) == expected


@pytest.mark.parametrize(
    ("mode", "current", "message"),
    [
        (0o644, None, r"mode 420 is 0644, which grants others"),
        (0o416, None, r"mode 270 is 0416, which grants others"),
        ("0644", None, r"mode '0644' is 0644, which grants others"),
        ("0o646", None, r"mode '0o646' is 0646, which grants others"),
        (640, None, r"mode 640 is 1200, .* sticky"),  # unquoted 640 without the zero
        ("4640", None, r"mode '4640' is 4640, .* setuid"),
        ("2640", None, r"mode '2640' is 2640"),
        ("u=rw,g=r", 0o644, r"mode 'u=rw,g=r' is 0644"),  # others keep their r
        ("o+x", 0o640, r"mode 'o\+x' is 0641"),
        (0o10640, None, r"mode 4512 holds more than permission bits"),
        ("rw-r-----", None, r"mode 'rw-r-----' is neither octal nor symbolic"),
        (True, None, r"mode True is not a file mode"),
    ],
)
def test_modes_opening_the_secrets_are_refused(mode, current, message):
    with pytest.raises(ValueError, match=message):
        env_file.parse_mode(mode, current)


def run_yaml_play(tmp_path, path, mode_yaml):
    """The module run from a YAML play, so the mode is spelled as a user would write it."""
    play = tmp_path / "play.yml"
    play.write_text(f"""\
- hosts: localhost
  gather_facts: false
  tasks:
    - gantry.deploy.env_file:
        path: {path}
        env: {{SECRET_KEY: s3cr3t-value}}
        owner: {os.environ.get("USER") or "root"}
        group: root
        mode: {mode_yaml}
""")
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(play),
           "-e", f"ansible_python_interpreter={sys.executable}"]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="json")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return proc.returncode, result


@pytest.mark.parametrize("mode_yaml", ["0640", '"0640"', "'u=rw,g=r,o='"])
def test_both_yaml_spellings_write_0640(tmp_path, mode_yaml):
    path = tmp_path / "app.env"
    rc, result = run_yaml_play(tmp_path, path, mode_yaml)
    assert rc == 0, result
    assert path.stat().st_mode & 0o7777 == 0o640


@pytest.mark.parametrize(
    ("mode_yaml", "shown"),
    [
        ("0644", "mode 420 is 0644"),
        ("0416", "mode 270 is 0416"),
        ('"0o646"', "mode '0o646' is 0646"),
    ],
)
def test_refused_mode_fails_naming_it_and_writes_nothing(tmp_path, mode_yaml, shown):
    path = tmp_path / "app.env"
    rc, result = run_yaml_play(tmp_path, path, mode_yaml)
    assert rc != 0 and result["failed"]
    assert shown in result["msg"]
    assert not path.exists()
    assert not list(tmp_path.glob(".env-*"))


def test_kept_keys_keep_the_file_lines_and_the_rest_is_compared(tmp_path):
    path = tmp_path / "app.env"
    path.write_text(env_file.render({"A": "1", "FLASKS3_BUCKET_NAME": "uploaded-bucket",
                                     "FLASKS3_CDN_DOMAIN": "cdn.example.org"}))
    path.chmod(0o640)
    user = os.environ.get("USER") or "root"
    base = {"path": str(path), "owner": user, "group": "root", "mode": "0640",
            "keep_keys_matching": "^FLASKS3_"}

    # The inventory alone has no FLASKS3_ key, and a value for one is not compared either.
    for env in ({"A": "1"}, {"A": "1", "FLASKS3_BUCKET_NAME": "other-bucket"}):
        same, _ = run_module(tmp_path, dict(base, env=env), check=True)
        assert same["changed"] is False, env
        assert same["changed_keys"] == []

    differs, output = run_module(tmp_path, dict(base, env={"A": "2", "B": "new"}), check=True)
    assert differs["changed"] is True
    assert differs["changed_keys"] == ["A", "B"]
    assert "uploaded-bucket" not in output

    # Written, the kept lines stay as they were and the rest follows env.
    run_module(tmp_path, dict(base, env={"A": "2"}))
    assert dotenv_values(path) == {"A": "2", "FLASKS3_BUCKET_NAME": "uploaded-bucket",
                                   "FLASKS3_CDN_DOMAIN": "cdn.example.org"}


def test_a_pattern_that_is_not_a_regular_expression_fails(tmp_path):
    path = tmp_path / "app.env"
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"gantry.deploy.env_file": {"path": str(path), "env": {"A": "1"},
                                "keep_keys_matching": "^FLASKS3_("}}],
    }]))
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(play),
           "-e", f"ansible_python_interpreter={sys.executable}"]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="json")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert proc.returncode != 0
    assert "keep_keys_matching is not a regular expression" in result["msg"]
    assert not path.exists()
