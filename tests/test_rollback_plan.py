"""playbooks/rollback_plan.yml decides where each host goes before any host changes.

Run on this machine against three local "hosts", each with a release record in a
scratch directory (the format module release_state writes): with no id the rollback
undoes the release activated last, leaves hosts that never reached it alone, and sends
the others to the good release each ran before; with an id it goes there, leaves hosts
already there alone, and refuses, for every host at once, a release that is failed, bad
or unknown on any host. A host that still keeps the settings files of the instance the
target last ran as rolls back with them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def release(state, at):
    return {"state": state, "build_digest": "sha256:x", "settings": {}, "deployed_by": "alice",
            "deployed_at": at, "state_changed_at": at}


def record(**releases):
    return {"version": 1, "releases": releases, "pending_restart": None}


def plan(tmp_path, records, *args):
    """Run the plan play; return (rc, output, {host: plan})."""
    hosts = {}
    for host, content in records.items():
        root = tmp_path / host
        root.mkdir(exist_ok=True)
        if content is not None:
            (root / "releases.json").write_text(json.dumps(content))
        hosts[host] = {"flask_release_root": str(root),
                       "flask_release_instance_settings_dir": str(root / "settings")}
    inventory = {"app_servers": {"hosts": hosts}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    keep = tmp_path / "plans.json"
    (tmp_path / "keep.yml").write_text(
        "- name: Keep the plans\n  hosts: app_servers\n  gather_facts: false\n  tasks:\n"
        "    - name: Keep\n      run_once: true\n      delegate_to: localhost\n"
        "      ansible.builtin.copy:\n"
        "        content: \"{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all"
        " | map('extract', hostvars, '__rollback_plan'))) | to_json }}\"\n"
        f"        dest: {keep}\n        mode: '0644'\n")
    (tmp_path / "both.yml").write_text(
        f"- name: Plan\n  ansible.builtin.import_playbook: {ROOT}/playbooks/rollback_plan.yml\n"
        f"- name: Keep\n  ansible.builtin.import_playbook: {tmp_path}/keep.yml\n")
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.json"),
         str(tmp_path / "both.yml"), "-c", "local",
         "-e", json.dumps({"ansible_python_interpreter": sys.executable,
                           "ansible_become": False, "gantry_app_name": "shop"}), *args],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    plans = json.loads(keep.read_text()) if keep.exists() else None
    return proc.returncode, proc.stdout + proc.stderr, plans


# r1 served everywhere, r2 replaced it on h1 and h2; the deploy stopped before h3.
PARTIAL = {
    "h1": record(r1=release("superseded", "2026-11-20T10:00:00Z"),
                 r2=release("active", "2026-11-26T04:10:00Z")),
    "h2": record(r1=release("superseded", "2026-11-20T10:00:00Z"),
                 r2=release("active", "2026-11-26T04:12:00Z"),
                 r0=release("superseded", "2026-11-10T10:00:00Z")),
    "h3": record(r1=release("active", "2026-11-20T10:00:00Z"),
                 r2=release("failed", "2026-11-26T04:13:00Z")),
}


def test_no_id_undoes_the_last_release_and_leaves_hosts_that_never_ran_it(tmp_path):
    rc, out, plans = plan(tmp_path, PARTIAL)
    assert rc == 0, out
    assert plans["h1"] == {"from": "r2", "to": "r1", "why": "", "settings_digest": ""}
    assert plans["h2"] == {"from": "r2", "to": "r1", "why": "", "settings_digest": ""}
    assert plans["h3"]["to"] == "" and "not r2, left alone" in plans["h3"]["why"], plans


def test_a_named_good_release(tmp_path):
    rc, out, plans = plan(tmp_path, {k: v for k, v in PARTIAL.items() if k != "h3"},
                          "-e", "gantry_rollback_to=r1")
    assert rc == 0, out
    assert plans["h1"]["to"] == "r1" and plans["h2"]["to"] == "r1"


def test_hosts_already_on_the_named_release_are_left_alone(tmp_path):
    rc, out, plans = plan(tmp_path, PARTIAL, "-e", "gantry_rollback_to=r1")
    assert rc == 0, out
    assert plans["h3"] == {"from": "r1", "to": "", "why": "already on r1", "settings_digest": ""}


def test_a_release_failed_on_one_host_is_refused_for_all(tmp_path):
    rc, out, plans = plan(tmp_path, PARTIAL, "-e", "gantry_rollback_to=r2")
    assert rc != 0
    assert "h3: r2 is failed here" in out, out
    assert plans is None


def test_a_release_unknown_on_one_host_is_refused_for_all(tmp_path):
    rc, out, _ = plan(tmp_path, PARTIAL, "-e", "gantry_rollback_to=r0")
    assert rc != 0
    assert "r0 is not on this host" in out, out


def test_nothing_to_go_back_to_is_refused(tmp_path):
    rc, out, _ = plan(tmp_path, {"h1": record(r1=release("active", "2026-11-20T10:00:00Z"))})
    assert rc != 0
    assert "no good release before r1" in out, out


def test_a_host_from_before_the_record_goes_to_its_previous_link(tmp_path):
    records = {"h1": record(r2=release("active", "2026-11-26T04:10:00Z"))}
    (tmp_path / "h1").mkdir()
    (tmp_path / "h1" / "releases").mkdir()
    os.symlink("releases/r1", tmp_path / "h1" / "previous")
    rc, out, plans = plan(tmp_path, {"h2": None} | records)
    assert rc == 0, out
    assert plans["h1"]["to"] == "r1", plans
    assert plans["h2"]["to"] == "" and "runs nothing" in plans["h2"]["why"], plans


def test_a_bad_id_is_refused(tmp_path):
    rc, out, _ = plan(tmp_path, PARTIAL, "-e", "gantry_rollback_to=../etc")
    assert rc != 0 and "gantry_rollback_to is" in out, out


def test_the_settings_the_target_last_ran_with_are_used_while_kept(tmp_path):
    digest = "abcdef12" + "3" * 56
    records = {host: record(
        r1=dict(release("superseded", "2026-11-20T10:00:00Z"),
                instance="r1-abcdef12", settings={"instance": digest}),
        r2=release("active", "2026-11-26T04:10:00Z")) for host in ("h1", "h2")}
    kept = tmp_path / "h1" / "settings" / "r1-abcdef12"
    kept.mkdir(parents=True)
    (kept / "env").write_text("SECRET_KEY=old\n")
    rc, out, plans = plan(tmp_path, records)
    assert rc == 0, out
    assert plans["h1"]["settings_digest"] == digest, plans
    assert "with the settings it last ran with" in out, out
    # Removed by a prune, or never made (deployed before instances had their own copies).
    assert plans["h2"] == {"from": "r2", "to": "r1", "why": "", "settings_digest": ""}, plans
    assert "none kept of its own" in out, out
