"""Role deploy_lock and the way deploy.yml and rollback.yml hold it, on this machine.

The plays hold the lock in a block whose "always" releases it and fails the host again
when its deploy failed. These tests run that shape with the role on localhost hosts (a
lock file in a scratch directory): a second run is refused with the holder's message and
changes nothing; a failed host releases its lock and still stops the next batch; the
batch-mate of a failed host finishes and releases too; check mode writes nothing.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def deploy_like(tmp_path, hosts="a,b,c", fail_on="", serial=2, *args, **extra):
    """Run deploy.yml's lock shape on local hosts; each host's lock is <tmp>/<host>.lock."""
    play = [{
        "name": "Deploy",
        "hosts": "all",
        "connection": "local",
        "gather_facts": False,
        "serial": serial,
        "max_fail_percentage": 0,
        "tasks": [{
            "name": "Deploy, holding the lock",
            "block": [
                {"name": "Take",
                 "ansible.builtin.import_role": {"name": "gantry.deploy.deploy_lock"}},
                {"name": "Fail here", "ansible.builtin.fail": {"msg": "gate failed"},
                 "when": "inventory_hostname in fail_on.split(',')"},
                {"name": "Deployed", "ansible.builtin.copy": {
                    "content": "x", "dest": f"{tmp_path}/{{{{ inventory_hostname }}}}.deployed",
                    "mode": "0644"}},
                {"name": "Finished", "ansible.builtin.set_fact": {"__finished": True}},
            ],
            "always": [
                {"name": "Release", "ansible.builtin.import_role": {
                    "name": "gantry.deploy.deploy_lock", "tasks_from": "release"}},
                {"name": "Stop", "ansible.builtin.fail": {"msg": "deploy failed"},
                 "when": "not __finished | default(false)"},
            ],
        }],
    }]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    extra = {"ansible_python_interpreter": sys.executable, "gantry_app_name": "shop",
             "deploy_lock_path": f"{tmp_path}/locks/{{{{ inventory_hostname }}}}.lock",
             "deploy_lock_holder": "alice@laptop", "fail_on": fail_on} | extra
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", hosts + ",", str(playbook),
         "-e", f"@{tmp_path / 'vars.json'}", *args],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def held_by(tmp_path, host, holder, message="deploy"):
    locks = tmp_path / "locks"
    locks.mkdir(exist_ok=True)
    (locks / f"{host}.lock").write_text(json.dumps({
        "holder": holder, "message": message, "started": "2026-11-26T04:12:00Z",
        "expires": "2999-01-01T00:00:00Z", "token": "theirs"}))


def deployed(tmp_path):
    return sorted(p.stem for p in tmp_path.glob("*.deployed"))


def test_a_run_takes_and_releases_the_lock_on_every_host(tmp_path):
    rc, out = deploy_like(tmp_path)
    assert rc == 0, out
    assert deployed(tmp_path) == ["a", "b", "c"]
    assert list((tmp_path / "locks").iterdir()) == []
    # Taken and released within the run: a run that changes nothing else reports nothing.
    rc, out = deploy_like(tmp_path)
    assert rc == 0, out
    assert re.findall(r"changed=(\d+)", out) == ["0", "0", "0"], out


def test_a_held_lock_refuses_the_deploy_naming_its_holder(tmp_path):
    held_by(tmp_path, "a", "bob@ci", "release freeze for the sale")
    rc, out = deploy_like(tmp_path, hosts="a")
    assert rc != 0
    assert "bob@ci" in out and "release freeze for the sale" in out, out
    assert deployed(tmp_path) == []
    # The refused run leaves the holder's lock alone.
    assert json.loads((tmp_path / "locks" / "a.lock").read_text())["token"] == "theirs"


def test_a_failed_host_releases_its_lock_its_batch_finishes_the_next_never_starts(tmp_path):
    rc, out = deploy_like(tmp_path, fail_on="a")
    assert rc != 0, out
    assert "gate failed" in out
    # b, in a's batch, finished its deploy; c, the next batch, never started.
    assert deployed(tmp_path) == ["b"]
    assert list((tmp_path / "locks").iterdir()) == []


def test_check_mode_takes_no_lock(tmp_path):
    (tmp_path / "locks").mkdir()
    rc, out = deploy_like(tmp_path, "a", "", 2, "--check")
    assert rc == 0, out
    assert list((tmp_path / "locks").iterdir()) == []


def test_check_mode_is_refused_by_a_held_lock(tmp_path):
    held_by(tmp_path, "a", "bob@ci")
    rc, out = deploy_like(tmp_path, "a", "", 2, "--check")
    assert rc != 0 and "bob@ci" in out, out


def test_bad_settings_are_refused_before_the_lock(tmp_path):
    rc, out = deploy_like(tmp_path, hosts="a", deploy_lock_ttl=0)
    assert rc != 0 and "deploy_lock_ttl is 0" in out, out
    assert not (tmp_path / "locks").exists()
