"""playbooks/run_lock.yml and run_unlock.yml, which hold one lock for a whole run.

site.yml and rollback.yml take the app's deploy lock on every host before anything is
built or changed, with one token, and give it back at the end; a play that ends the run
early gives it back on every host (deploy_lock's release_run). These tests run the real
plays on local hosts a, b and c (locks in a scratch directory) around plays standing in
for the deploy.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(tmp_path, middle=(), **extra):
    """run_lock.yml, the plays in middle, run_unlock.yml; returns (exit code, output)."""
    plays = ([{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "run_lock.yml")}]
             + list(middle)
             + [{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "run_unlock.yml")}])
    (tmp_path / "site.yml").write_text(yaml.safe_dump(plays))
    (tmp_path / "hosts.ini").write_text(
        "[app_servers]\na\nb\nc\n[app_servers:vars]\nansible_connection=local\n")
    extra = {"ansible_python_interpreter": sys.executable, "ansible_become": False,
             "gantry_app_name": "shop", "deploy_lock_holder": "alice@laptop",
             "deploy_lock_path": f"{tmp_path}/locks/{{{{ inventory_hostname }}}}.lock"} | extra
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    (tmp_path / "locks").mkdir(exist_ok=True)
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
         str(tmp_path / "site.yml"), "-e", f"@{tmp_path / 'vars.json'}"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def locks(tmp_path):
    return {path.stem: json.loads(path.read_text()) for path in (tmp_path / "locks").glob("*.lock")}


def copy_locks_play(tmp_path):
    """A play that keeps a copy of every host's lock as the middle of the run sees it."""
    return {"name": "Look at the locks", "hosts": "app_servers", "gather_facts": False,
            "tasks": [{"name": "Copy", "ansible.builtin.copy": {
                "src": f"{tmp_path}/locks/{{{{ inventory_hostname }}}}.lock",
                "dest": f"{tmp_path}/{{{{ inventory_hostname }}}}.seen", "mode": "0644"}}]}


def held_by_bob(tmp_path, host):
    (tmp_path / "locks").mkdir(exist_ok=True)
    (tmp_path / "locks" / f"{host}.lock").write_text(json.dumps({
        "holder": "bob@ci", "message": "release freeze for the sale",
        "started": "2026-11-26T04:12:00Z", "expires": "2999-01-01T00:00:00Z", "token": "theirs"}))


def test_one_token_holds_every_host_for_the_whole_run(tmp_path):
    rc, out = run(tmp_path, [copy_locks_play(tmp_path)])
    assert rc == 0, out
    seen = [json.loads((tmp_path / f"{host}.seen").read_text()) for host in "abc"]
    assert {lock["holder"] for lock in seen} == {"alice@laptop"}
    assert len({lock["token"] for lock in seen}) == 1
    assert locks(tmp_path) == {}
    # The lock is the run's own: taking and giving it back is no change.
    rc, out = run(tmp_path)
    assert rc == 0, out
    assert out.count("changed=0") == 3, out


def test_a_host_held_by_another_run_stops_the_run_before_anything(tmp_path):
    held_by_bob(tmp_path, "b")
    rc, out = run(tmp_path, [copy_locks_play(tmp_path)])
    assert rc != 0
    flat = " ".join(out.split())
    assert "b: deploy lock held by bob@ci" in flat and "release freeze for the sale" in flat, out
    assert "Nothing was built, uploaded or changed" in flat
    assert not list(tmp_path.glob("*.seen"))
    # a and c gave theirs back; bob's stays as it was.
    assert list(locks(tmp_path)) == ["b"] and locks(tmp_path)["b"]["token"] == "theirs"


def test_a_batch_that_ends_the_run_gives_back_every_host_lock(tmp_path):
    failing_batch = {
        "name": "Deploy", "hosts": "app_servers", "gather_facts": False, "serial": 1,
        "max_fail_percentage": 0,
        "tasks": [
            {"name": "Fail on a", "ansible.builtin.fail": {"msg": "gate failed"},
             "when": "inventory_hostname == 'a'", "ignore_errors": True,
             "register": "gate"},
            {"name": "Give back the run's lock everywhere", "ansible.builtin.include_role": {
                "name": "gantry.deploy.deploy_lock", "tasks_from": "release_run"},
             "when": "gate is failed"},
            {"name": "Stop", "ansible.builtin.fail": {"msg": "deploy failed"},
             "when": "gate is failed"}]}
    rc, out = run(tmp_path, [failing_batch])
    assert rc != 0 and "deploy failed" in out, out
    # b and c were never reached, and their locks are gone too.
    assert locks(tmp_path) == {}


def test_a_failed_build_gives_back_the_lock_on_every_host(tmp_path):
    """The real build play, with a source that does not exist: its rescue gives back
    each host's lock and ends the run."""
    build = {"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "build.yml")}
    rc, out = run(tmp_path, [build], gantry_app_source=str(tmp_path / "no-such-app"),
                  gantry_wsgi_app="app:app", flask_app_build_dir=str(tmp_path / "build"))
    assert rc != 0
    assert "The build failed" in " ".join(out.split()), out
    assert locks(tmp_path) == {}


@pytest.mark.parametrize(("playbook", "enabled", "message"), [
    ("assets.yml", "s3_static_enabled", "The upload failed"),
    ("cdn.yml", "cloudflare_cdn_enabled", "The CDN step failed"),
])
def test_a_failed_upload_or_cdn_step_gives_back_the_lock_on_every_host(
        tmp_path, playbook, enabled, message):
    """The real assets and CDN plays, each failing at once (no build ran before them,
    and the CDN has no zone): their rescue gives back each host's lock."""
    play = {"ansible.builtin.import_playbook": str(ROOT / "playbooks" / playbook)}
    rc, out = run(tmp_path, [play], **{enabled: True})
    assert rc != 0
    assert message in " ".join(out.split()), out
    assert "No lock of this run is left" in " ".join(out.split()), out
    assert locks(tmp_path) == {}
