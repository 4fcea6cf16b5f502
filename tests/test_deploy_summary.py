"""playbooks/tasks/deploy_summary.yml: the screen and the JSON at the end of a deploy.

The task file runs on local hosts a, b and c with the facts the plays leave (the release,
each host's before/finished/switched/outcome, the steps' start times, the upload's
counts, the purge), as a successful run and as a reverted one.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# What the plays leave on each host that the summary reads.
FACTS = ["flask_app_release", "__run_steps", "__deploy_before", "__deploy_finished",
         "__deploy_seconds", "__deploy_outcome", "__deploy_applied", "__revert_after",
         "__revert_seconds", "__put_back_finished", "flask_release_switched",
         "flask_release_failed", "flask_release_failed_step", "s3_static_counts",
         "cloudflare_cdn_purged_urls", "cloudflare_cdn_purged_prefixes"]

STEPS = {"validate": 1000.0, "lock": 1010.0, "build": 1012.5, "assets": 1030.0,
         "deploy": 1031.0, "cdn": 1090.0}


def summarise(tmp_path, facts, summary_file="out.json", **extra):
    """Set facts per host (dict of host → facts), run the task file; (rc, output, JSON)."""
    play = [{
        "name": "Summary", "hosts": "all", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROOT / "playbooks/vars/release_run.yml")],
        "tasks": [
            {"name": "Facts the plays leave", "ansible.builtin.set_fact": {
                "__host_facts": "{{ per_host[inventory_hostname] }}"}},
            {"name": "Spread them", "ansible.builtin.set_fact": {
                name: f"{{{{ __host_facts.{name} | default(omit) }}}}" for name in FACTS}},
            {"name": "Summary", "ansible.builtin.include_tasks":
                str(ROOT / "playbooks/tasks/deploy_summary.yml")},
        ],
    }]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    path = tmp_path / "summaries" / summary_file if summary_file else ""
    extra = {"ansible_python_interpreter": sys.executable, "per_host": facts,
             "gantry_summary_file": str(path)} | extra
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", ",".join(facts) + ",", str(tmp_path / "play.yml"),
         "-e", f"@{tmp_path / 'vars.json'}"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    data = json.loads(path.read_text()) if path and path.exists() else None
    return proc.returncode, proc.stdout + proc.stderr, data


def host(**facts):
    return {"flask_app_release": {"release_id": "r2"}, "__run_steps": STEPS} | facts


def test_a_deploy_that_went_through(tmp_path):
    rc, out, data = summarise(tmp_path, {
        "a": host(__deploy_before="r1", __deploy_finished=True, flask_release_switched=True,
                  __deploy_seconds=41,
                  s3_static_counts={"files": 120, "bytes": 900000, "uploaded": 3,
                                    "uploaded_bytes": 4567, "copied": 117, "deleted": 1,
                                    "version": "v0123456789ab"},
                  cloudflare_cdn_purged_urls=["https://cdn.example/static/app.css"],
                  cloudflare_cdn_purged_prefixes=["www.example/static/"]),
        "b": host(__deploy_before="r2", __deploy_finished=True, __deploy_applied={"matches": True},
                  __deploy_seconds=2),
        "c": host(__deploy_before="r2", __deploy_finished=True, flask_release_switched=False,
                  __deploy_seconds=30),
    })
    assert rc == 0, out
    assert data["release"] == "r2" and data["outcome"] == "deployed"
    assert data["hosts"] == [
        {"host": "a", "before": "r1", "after": "r2", "outcome": "switched", "seconds": 41},
        {"host": "b", "before": "r2", "after": "r2", "outcome": "nothing to do", "seconds": 2},
        {"host": "c", "before": "r2", "after": "r2", "outcome": "already on it", "seconds": 30},
    ]
    # Each step lasts until the next one starts; the last until the summary.
    assert list(data["steps"]) == ["validate", "lock", "build", "assets", "deploy", "cdn"]
    assert [data["steps"][k] for k in ("validate", "lock", "build", "assets", "deploy")] == \
        [10, 2, 18, 1, 59]
    assert abs(data["seconds"] - sum(data["steps"].values())) <= 1
    assert data["assets"] == {"files": 120, "bytes": 900000, "uploaded": 3,
                              "uploaded_bytes": 4567, "copied": 117, "deleted": 1,
                              "version": "v0123456789ab"}
    assert data["cdn"]["purged_urls"] == ["https://cdn.example/static/app.css"]
    flat = " ".join(out.split())
    assert "Release r2: deployed (3 hosts" in flat
    assert "a | r1 | r2 | switched | 41 s" in flat
    assert ("assets v0123456789ab: 3 of 120 files uploaded (4567 bytes), "
            "117 copied in the bucket, 1 deleted") in flat
    assert "CDN: 2 purged: https://cdn.example/static/app.css www.example/static/" in flat


def test_a_reverted_deploy(tmp_path):
    rc, out, data = summarise(tmp_path, {
        "a": host(__deploy_before="r1", __deploy_finished=True, flask_release_switched=True,
                  __put_back_finished=True, __revert_after={"active": "r1"},
                  __deploy_seconds=40, __revert_seconds=12),
        "b": host(__deploy_before="r1", __deploy_finished=False, flask_release_failed=True,
                  flask_release_failed_step="health gate", __revert_after={"active": "r1"},
                  __deploy_seconds=25),
        "c": host(__deploy_outcome="not reached", __revert_after={"active": "r1"}),
    })
    assert rc == 0, out
    assert data["outcome"] == "failed on b; the hosts it reached were put back"
    assert [(h["before"], h["after"], h["outcome"], h["seconds"]) for h in data["hosts"]] == [
        ("r1", "r1", "switched, put back", 52), ("r1", "r1", "failed its health gate", 25),
        ("r1", "r1", "not reached", 0)]
    assert data["assets"] is None and data["cdn"] is None
    flat = " ".join(out.split())
    assert "assets: S3 off" in flat and "CDN: off" in flat


def test_a_run_with_nothing_to_do(tmp_path):
    rc, out, data = summarise(tmp_path, {
        "a": host(__deploy_before="r2", __deploy_finished=True, __deploy_applied={"matches": True}),
        "b": host(__deploy_before="r2", __deploy_finished=True)})
    assert rc == 0, out
    assert data["outcome"] == "every host already ran it"
    assert [h["outcome"] for h in data["hosts"]] == ["nothing to do", "already on it"]


def test_no_file_when_asked_for_none(tmp_path):
    rc, out, data = summarise(tmp_path, {"a": host(__deploy_finished=True)}, summary_file="")
    assert rc == 0, out
    assert data is None and not (tmp_path / "summaries").exists()
    assert "written to" not in out
