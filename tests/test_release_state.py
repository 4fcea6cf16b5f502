"""release_state keeps an app's releases on the host: every action, the ledger, check mode.

Each test runs the module in-process on a state file in a scratch directory, as Ansible
would run it on the host, and reads back what it wrote. Times come from the module's
`now` option, so no test waits.
"""

import fcntl
import json
import os
import stat
import threading

import pytest
from gantry_modules import run_module

T0 = "2026-11-26T04:00:00Z"


def at(minute):
    """The time minute minutes after 04:00 on the day of the tests."""
    return f"2026-11-26T{4 + minute // 60:02d}:{minute % 60:02d}:00Z"


class Host:
    """The app's directory on a host: its state file and ledger."""

    def __init__(self, root):
        self.root = root
        self.path = root / "releases.json"
        self.ledger = root / "ledger.jsonl"

    def __call__(self, action="read", check_mode=False, ok=True, **args):
        args = {"path": str(self.path), "ledger_path": str(self.ledger), "action": action,
                "deployed_by": "alice@laptop run 20261126T0412", "now": T0} | args
        out = run_module("release_state", args, check_mode=check_mode)
        assert bool(out.get("failed")) is not ok, out
        return out

    def record(self, release, minute=0, **args):
        return self("record", release=release, build_digest=f"sha256:{release}",
                    settings={"shop.env": "a" * 64}, now=at(minute), **args)

    def deploy(self, release, minute):
        self.record(release, minute)
        return self("activate", release=release, now=at(minute + 1))

    def data(self):
        return json.loads(self.path.read_text())

    def lines(self):
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines()]

    def snapshot(self):
        """Everything the module could have written: names and bytes of the directory."""
        return {p.name: p.read_bytes() for p in self.root.iterdir()}


@pytest.fixture
def host(tmp_path):
    root = tmp_path / "srv-shop"
    root.mkdir()
    return Host(root)


# -- read ------------------------------------------------------------------------------

def test_a_missing_file_reads_as_an_empty_state_and_is_not_created(host):
    out = host("read")
    assert out["changed"] is False
    assert out["state"] == {"version": 1, "releases": {}}
    assert (out["active"], out["last_good"], out["good"]) == (None, None, [])
    assert not host.path.exists() and not host.ledger.exists()


def test_a_file_from_before_keeps_working_and_loses_its_unused_field(host):
    host.deploy("r1", 0)
    earlier = host.data() | {"pending_restart": None}
    host.path.write_text(json.dumps(earlier))
    assert host("read")["state"] == {"version": 1, "releases": earlier["releases"]}
    assert host("activate", release="r1", now=at(5))["changed"] is False
    host.deploy("r2", 10)
    assert "pending_restart" not in host.data()


def test_read_returns_active_last_good_and_good_newest_first(host):
    host.deploy("r1", 0)
    host.deploy("r2", 10)
    host.deploy("r3", 20)
    host.record("r4", 30)
    host("mark", release="r4", state="failed", now=at(31))
    out = host("read")
    assert out["active"] == "r3" and out["last_good"] == "r3"
    assert out["good"] == ["r3", "r2", "r1"]
    assert set(out["state"]["releases"]) == {"r1", "r2", "r3", "r4"}


def test_without_an_active_release_the_last_good_is_the_last_superseded(host):
    host.deploy("r1", 0)
    host.deploy("r2", 10)
    host("mark", release="r2", state="bad", force=True, now=at(20))
    out = host("read")
    assert (out["active"], out["last_good"], out["good"]) == (None, "r1", ["r1"])


def test_the_active_release_is_the_last_good_even_after_a_later_mark(host):
    host.deploy("r1", 0)
    host.record("r2", 10)
    host("mark", release="r2", state="failed", now=at(11))
    # Marked good again after r1 became active: still never served after r1.
    host("mark", release="r2", state="superseded", now=at(30))
    out = host("read")
    assert out["last_good"] == "r1" and out["good"] == ["r1", "r2"]


# -- record ----------------------------------------------------------------------------

def test_record_adds_a_staged_release_atomically_as_root_0644(host):
    old_umask = os.umask(0o077)
    try:
        out = host.record("r1", 5, instance="r1-aaaaaaaa")
    finally:
        os.umask(old_umask)
    assert out["changed"] is True
    release = host.data()["releases"]["r1"]
    assert release == {
        "state": "staged", "build_digest": "sha256:r1", "settings": {"shop.env": "a" * 64},
        "deployed_by": "alice@laptop run 20261126T0412", "deployed_at": at(5),
        "state_changed_at": at(5), "instance": "r1-aaaaaaaa",
    }
    assert out["state"]["releases"]["r1"] == release
    st = host.path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (0, 0)
    # No temporary file left next to it.
    assert sorted(p.name for p in host.root.iterdir()) == ["ledger.jsonl", "releases.json"]
    assert out["diff"]["before"] == "" and '"r1"' in out["diff"]["after"]


def test_recording_the_same_release_again_changes_nothing_and_logs_nothing(host):
    host.record("r1", 0)
    before, mtime = host.snapshot(), host.path.stat().st_mtime_ns
    out = host.record("r1", 9)
    assert out["changed"] is False and "diff" not in out
    assert host.snapshot() == before and host.path.stat().st_mtime_ns == mtime
    assert len(host.lines()) == 1


def test_recording_the_active_release_never_downgrades_it(host):
    host.deploy("r1", 0)
    out = host.record("r1", 5)
    assert out["changed"] is False and out["active"] == "r1"
    out = host("record", release="r1", build_digest="sha256:r1", settings={"shop.env": "b" * 64},
               now=at(6))
    assert out["changed"] is True
    release = host.data()["releases"]["r1"]
    assert release["state"] == "active" and release["settings"] == {"shop.env": "b" * 64}
    assert release["state_changed_at"] == at(1) and release["deployed_at"] == at(6)
    assert host.lines()[-1] | {"at": None} == {
        "at": None, "by": "alice@laptop run 20261126T0412", "action": "record",
        "release": "r1", "from_state": "active", "to_state": "active"}


def test_recording_a_failed_release_again_stages_it_but_a_bad_one_needs_force(host):
    host.record("r1", 0)
    host("mark", release="r1", state="failed", now=at(1))
    assert host.record("r1", 2)["state"]["releases"]["r1"]["state"] == "staged"
    host("mark", release="r1", state="bad", now=at(3))
    out = host.record("r1", 4, ok=False)
    assert "r1 is marked bad" in out["msg"] and "force=true" in out["msg"]
    assert host.data()["releases"]["r1"]["state"] == "bad"
    assert host.record("r1", 5, force=True)["state"]["releases"]["r1"]["state"] == "staged"


# -- activate --------------------------------------------------------------------------

def test_activate_supersedes_the_previous_active_release(host):
    host.deploy("r1", 0)
    host.record("r2", 10)
    # seconds as a template renders it, a string: the ledger gets the number.
    out = host("activate", release="r2", now=at(11),
               entry={"outcome": "gate passed", "seconds": "12.5"})
    assert out["changed"] is True and out["active"] == "r2"
    releases = host.data()["releases"]
    assert [releases[r]["state"] for r in ("r1", "r2")] == ["superseded", "active"]
    assert releases["r1"]["state_changed_at"] == at(11)
    assert host.lines()[-1] == {
        "at": at(11), "by": "alice@laptop run 20261126T0412", "action": "activate",
        "release": "r2", "from_state": "staged", "to_state": "active", "superseded": "r1",
        "outcome": "gate passed", "seconds": 12.5}
    # Rolling back is activating the superseded one.
    out = host("activate", release="r1", now=at(20))
    assert [out["state"]["releases"][r]["state"] for r in ("r1", "r2")] == [
        "active", "superseded"]
    assert sum(r["state"] == "active" for r in host.data()["releases"].values()) == 1


def test_activating_the_active_release_again_changes_nothing(host):
    host.deploy("r1", 0)
    lines = host.lines()
    assert host("activate", release="r1", now=at(9))["changed"] is False
    assert host.lines() == lines


def test_activate_refuses_unknown_failed_and_bad_releases(host):
    out = host("activate", release="r9", ok=False)
    assert "release r9 is not recorded" in out["msg"]
    host.record("r1", 0)
    host("mark", release="r1", state="failed", now=at(1))
    out = host("activate", release="r1", ok=False, now=at(2))
    assert "r1 is marked failed" in out["msg"]
    assert host("activate", release="r1", force=True, now=at(3))["active"] == "r1"


# -- mark ------------------------------------------------------------------------------

def test_mark_sets_the_state_and_logs_the_entry(host):
    host.record("r1", 0)
    out = host("mark", release="r1", state="failed", now=at(2),
               entry={"outcome": "health gate failed", "message": "GET /healthz: 500"})
    assert out["changed"] is True
    assert host.data()["releases"]["r1"]["state"] == "failed"
    assert host.lines()[-1] == {
        "at": at(2), "by": "alice@laptop run 20261126T0412", "action": "mark",
        "release": "r1", "from_state": "staged", "to_state": "failed",
        "outcome": "health gate failed", "message": "GET /healthz: 500"}
    assert host("mark", release="r1", state="failed", now=at(3))["changed"] is False
    assert len(host.lines()) == 2


@pytest.mark.parametrize("new_state", ["failed", "bad", "superseded"])
def test_the_active_release_cannot_be_marked_without_force(host, new_state):
    host.deploy("r1", 0)
    before = host.snapshot()
    out = host("mark", release="r1", state=new_state, ok=False)
    assert "r1 is the active one" in out["msg"] and "activate" in out["msg"]
    assert host.snapshot() == before
    out = host("mark", release="r1", state=new_state, force=True, now=at(5))
    assert out["active"] is None and host.data()["releases"]["r1"]["state"] == new_state


def test_a_staged_release_cannot_be_called_superseded_without_force(host):
    host.record("r1", 0)
    out = host("mark", release="r1", state="superseded", ok=False)
    assert "never served" in out["msg"]
    assert host("read")["good"] == []


def test_mark_of_an_unknown_release_fails(host):
    host.record("r1", 0)
    out = host("mark", release="r2", state="bad", ok=False)
    assert "release r2 is not recorded (recorded: r1)" in out["msg"]


# -- prune_plan ------------------------------------------------------------------------

@pytest.fixture
def history(host):
    """r1..r5 deployed in turn (r5 active), r6 failed, r7 bad, r8 staged, in time order."""
    for n in range(1, 6):
        host.deploy(f"r{n}", n * 10)
    host.record("r6", 60)
    host("mark", release="r6", state="failed", now=at(61))
    host.deploy("r7", 50)  # deployed earlier, then judged bad after r5 took over again
    host("activate", release="r5", now=at(55))
    host("mark", release="r7", state="bad", now=at(56))
    host.record("r8", 70)
    return host


def test_prune_removes_failed_first_then_the_oldest_good_beyond_keep(history):
    before = history.snapshot()
    out = history("prune_plan", keep=2)
    assert out["remove"] == ["r7", "r6", "r1", "r2", "r3"]
    assert out["changed"] is False and history.snapshot() == before
    assert out["active"] == "r5" and out["good"][:2] == ["r5", "r4"]


def test_prune_never_removes_active_last_good_protected_or_staged(history):
    history("record", release="r8", build_digest="sha256:r8", instance="r8-instance",
            now=at(73))
    for keep in (1, 2, 10):
        out = history("prune_plan", keep=keep, protect=["r2", "r6"])
        assert not {"r5", "r2", "r6", "r8"} & set(out["remove"]), (keep, out["remove"])
    assert history("prune_plan", keep=1)["remove"] == ["r7", "r6", "r1", "r2", "r3", "r4"]
    # Without an active release the last good one is the newest superseded, kept too.
    history("mark", release="r5", state="bad", force=True, now=at(80))
    out = history("prune_plan", keep=1)
    assert out["last_good"] == "r4" and "r4" not in out["remove"]
    assert out["remove"][:3] == ["r7", "r6", "r5"]


def test_prune_with_forget_drops_the_removed_releases_and_logs_each(history):
    lines = len(history.lines())
    out = history("prune_plan", keep=3, forget=True, now=at(90))
    assert out["remove"] == ["r7", "r6", "r1", "r2"] and out["changed"] is True
    # The bad one only loses its files (see below).
    assert sorted(history.data()["releases"]) == ["r3", "r4", "r5", "r7", "r8"]
    assert [(x["release"], x["from_state"], x["to_state"]) for x in history.lines()[lines:]] == [
        ("r7", "bad", "bad"), ("r6", "failed", None), ("r1", "superseded", None),
        ("r2", "superseded", None)]
    again = history("prune_plan", keep=3, forget=True, now=at(91))
    assert again["remove"] == [] and again["changed"] is False
    assert len(history.lines()) == lines + 4


def test_prune_with_forget_keeps_a_bad_release_as_pruned_and_lists_it_once(history):
    lines, record = len(history.lines()), history.data()["releases"]["r7"]
    history("prune_plan", keep=3, forget=True, now=at(90))
    assert history.data()["releases"]["r7"] == record | {"pruned_at": at(90)}
    assert record["state"] == "bad"
    assert history.lines()[lines] == {
        "at": at(90), "by": "alice@laptop run 20261126T0412", "action": "prune_plan",
        "release": "r7", "from_state": "bad", "to_state": "bad"}
    before = history.snapshot()
    for forget in (False, True):
        out = history("prune_plan", keep=3, forget=forget, now=at(91))
        assert "r7" not in out["remove"] and out["changed"] is False
    assert history.snapshot() == before


def test_a_pruned_bad_release_is_still_refused_unless_deployed_again_with_force(history):
    history("prune_plan", keep=3, forget=True, now=at(90))
    out = history.record("r7", 91, ok=False)
    assert "r7 is marked bad" in out["msg"] and "force=true" in out["msg"]
    assert history.data()["releases"]["r7"]["pruned_at"] == at(90)
    release = history.record("r7", 92, force=True)["state"]["releases"]["r7"]
    assert release["state"] == "staged" and "pruned_at" not in release
    assert history("activate", release="r7", now=at(93))["active"] == "r7"


def test_a_pruned_release_cannot_be_activated_or_made_good_even_with_force(history):
    history("prune_plan", keep=3, forget=True, now=at(90))
    before = history.snapshot()
    for action, args in [("activate", {}), ("mark", {"state": "superseded"})]:
        out = history(action, release="r7", force=True, ok=False, now=at(91), **args)
        assert f"were removed by a prune at {at(90)}" in out["msg"], out["msg"]
        assert "deploy it again" in out["msg"]
    assert history.snapshot() == before


def test_prune_keeps_only_the_newest_pruned_bad_releases(host):
    def bad(n):
        host.record(f"b{n:02d}", 2 * n)
        host("mark", release=f"b{n:02d}", state="bad", now=at(2 * n + 1))

    for n in range(1, 22):
        bad(n)
    out = host("prune_plan", forget=True, now=at(100))
    assert out["remove"] == [f"b{n:02d}" for n in range(1, 22)]
    assert sorted(host.data()["releases"]) == [f"b{n:02d}" for n in range(2, 22)]
    assert all(r["pruned_at"] == at(100) for r in host.data()["releases"].values())
    assert [(x["release"], x["to_state"]) for x in host.lines()[-21:]] == [
        ("b01", None)] + [(f"b{n:02d}", "bad") for n in range(2, 22)]
    bad(22)
    out = host("prune_plan", forget=True, now=at(101))
    assert out["remove"] == ["b22"]
    assert sorted(host.data()["releases"]) == [f"b{n:02d}" for n in range(3, 23)]
    assert [(x["release"], x["from_state"], x["to_state"]) for x in host.lines()[-2:]] == [
        ("b22", "bad", "bad"), ("b02", "bad", None)]


def test_a_change_waits_for_another_run_changing_the_state(host):
    # Both would read the same old file, and the later write would lose the other's change.
    host.record("r1", 0)
    fd = os.open(host.root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        writer = threading.Thread(target=host.record, args=("r2", 5))
        writer.start()
        writer.join(0.1)
        assert writer.is_alive() and list(host.data()["releases"]) == ["r1"]
    finally:
        os.close(fd)
    writer.join(5)
    assert sorted(host.data()["releases"]) == ["r1", "r2"]


# -- check mode ------------------------------------------------------------------------

CHANGES = [
    ("record", {"release": "r9", "build_digest": "sha256:r9"}),
    ("activate", {"release": "r4"}),
    ("mark", {"release": "r4", "state": "bad"}),
    ("prune_plan", {"keep": 1, "forget": True}),
]


@pytest.mark.parametrize(("action", "args"), CHANGES, ids=[c[0] for c in CHANGES])
def test_check_mode_reports_the_change_and_writes_nothing(history, action, args):
    before = history.snapshot()
    mtime = history.path.stat().st_mtime_ns
    out = history(action, check_mode=True, now=at(99), **args)
    assert out["changed"] is True
    assert out["diff"]["before"] == json.dumps(history.data(), indent=2, sort_keys=True) + "\n"
    assert out["diff"]["after"] != out["diff"]["before"]
    assert json.loads(out["diff"]["after"]) == out["state"]
    assert history.snapshot() == before and history.path.stat().st_mtime_ns == mtime
    # The real run does what check mode said it would.
    real = history(action, now=at(99), **args)
    assert real["state"] == out["state"] and real["changed"] is True


def test_check_mode_on_a_new_host_creates_nothing(host):
    out = host.record("r1", 0, check_mode=True)
    assert out["changed"] is True and out["state"]["releases"]["r1"]["state"] == "staged"
    assert list(host.root.iterdir()) == []


def test_diff_is_only_returned_in_diff_mode(host):
    out = run_module("release_state", {"path": str(host.path), "action": "record",
                                       "release": "r1", "build_digest": "d"}, diff=False)
    assert out["changed"] is True and "diff" not in out
    assert out["state"]["releases"]["r1"]["deployed_by"]  # the user the module runs as


# -- refusals --------------------------------------------------------------------------

@pytest.mark.parametrize("content", ['{"version": 1, "releases": {"r1": ', "", "not json"])
def test_a_corrupt_state_file_fails_naming_it_and_is_left_alone(host, content):
    host.path.write_text(content)
    for action, args in [("read", {}), ("record", {"release": "r1", "build_digest": "d"})]:
        out = host(action, ok=False, **args)
        assert str(host.path) in out["msg"] and "not valid JSON" in out["msg"], out["msg"]
        assert host.path.read_text() == content
    assert not host.ledger.exists()


@pytest.mark.parametrize(("data", "why"), [
    ([], "the top level is a list"),
    ({"version": 2, "releases": {}}, "version is 2"),
    ({"version": 1, "releases": {"r1": {"state": "live"}}}, "release r1 has no valid state"),
    ({"version": 1, "releases": {"../etc": {"state": "failed"}}}, "'../etc' is not a valid"),
    ({"version": 1, "releases": {"a": {"state": "active"}, "b": {"state": "active"}}},
     "more than one release is active (a, b)"),
])
def test_a_state_file_that_is_not_a_release_state_fails(host, data, why):
    host.path.write_text(json.dumps(data))
    out = host("read", ok=False)
    assert str(host.path) in out["msg"] and why in out["msg"], out["msg"]


@pytest.mark.parametrize(("args", "why"), [
    ({"action": "record", "release": "../x", "build_digest": "d"}, "is not a release id"),
    ({"action": "record", "release": "r1"}, "build_digest"),
    ({"action": "prune_plan", "keep": 0}, "keep must be 1 or more"),
    ({"action": "mark", "release": "r1", "state": "bad", "entry": {"outcme": "x"}},
     "entry field 'outcme'"),
    ({"action": "record", "release": "r1", "build_digest": "d", "settings": {"a": 1}},
     "must be a digest string"),
    ({"now": "yesterday"}, "now must be an ISO-8601 time"),
    ({"action": "mark", "release": "r1", "state": "bad", "entry": {"seconds": "soon"}},
     "entry field seconds has the wrong type: 'soon'"),
])
def test_bad_parameters_fail_before_anything_is_read(host, args, why):
    out = host(ok=False, **args)
    assert why in out["msg"], out["msg"]
    assert list(host.root.iterdir()) == []


def test_a_change_without_the_directory_fails_clearly(tmp_path):
    path = tmp_path / "missing" / "releases.json"
    out = run_module("release_state", {"path": str(path), "action": "record", "release": "r1",
                                       "build_digest": "d"})
    assert out["failed"] and "its directory does not exist" in out["msg"]


def test_no_ledger_path_no_ledger(host):
    out = run_module("release_state", {"path": str(host.path), "action": "record",
                                       "release": "r1", "build_digest": "d", "now": T0})
    assert out["changed"] is True
    assert [p.name for p in host.root.iterdir()] == ["releases.json"]
