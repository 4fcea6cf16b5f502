"""deploy_lock lets one deploy at a time onto a host and says who holds it.

Most tests run the module in-process on a lock file in a scratch directory, with times
from its `now` option (no test waits for a lock to expire). One starts several real
processes taking the lock at the same moment.
"""

import contextlib
import fcntl
import json
import os
import stat
import subprocess
import threading

import pytest
from gantry_modules import load_module, module_command, run_module

T0 = "2026-11-26T04:12:00Z"
ALICE = {"holder": "alice@laptop run 20261126T0412", "reason": "release freeze for the sale"}
BOB = {"holder": "bob@ci run 20261126T0500", "reason": "nightly"}


def as_lock(taker):
    """What the lock file holds for the module arguments of who took it."""
    return {"holder": taker["holder"], "message": taker["reason"]}


@pytest.fixture
def lock(tmp_path):
    path = tmp_path / "deploy.lock"

    def call(action="show", check_mode=False, ok=True, **args):
        args = {"path": str(path), "action": action, "now": T0} | args
        out = run_module("deploy_lock", args, check_mode=check_mode)
        assert bool(out.get("failed")) is not ok, out
        return out

    call.path = path
    return call


@contextlib.contextmanager
def held_flock(directory):
    """Hold the directory's flock as another run of the module would."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def content(path):
    return json.loads(path.read_text())


# -- show ------------------------------------------------------------------------------

def test_show_without_a_lock(lock):
    out = lock("show")
    assert (out["lock"], out["expired"], out["changed"]) == (None, False, False)
    assert not lock.path.exists()


def test_show_says_whether_the_lock_expired(lock):
    taken = lock("take", ttl=60, **ALICE)
    assert lock("show", now="2026-11-26T04:12:59Z")["expired"] is False
    out = lock("show", now="2026-11-26T04:13:00Z")
    assert out["expired"] is True and out["lock"] == taken["lock"]


# -- take ------------------------------------------------------------------------------

def test_take_creates_the_lock_with_holder_times_and_token(lock):
    old_umask = os.umask(0o077)
    try:
        out = lock("take", ttl=600, **ALICE)
    finally:
        os.umask(old_umask)
    assert out["changed"] is True and out["broken"] is None and out["expired"] is False
    assert out["lock"] == content(lock.path) == {
        **as_lock(ALICE), "started": T0, "expires": "2026-11-26T04:22:00Z",
        "token": out["token"]}
    assert len(out["token"]) == 32
    assert stat.S_IMODE(lock.path.stat().st_mode) == 0o644
    assert out["diff"]["before"] == "" and out["token"] in out["diff"]["after"]
    assert [p.name for p in lock.path.parent.iterdir()] == ["deploy.lock"]


def test_a_second_take_fails_naming_the_holder_and_leaves_the_lock(lock):
    first = lock("take", ttl=3600, **ALICE)
    before = lock.path.read_bytes()
    out = lock("take", ok=False, now="2026-11-26T04:30:00Z", **BOB)
    assert out["msg"].startswith(
        "deploy lock held by alice@laptop run 20261126T0412 since 2026-11-26T04:12:00Z "
        "(until 2026-11-26T05:12:00Z): release freeze for the sale"), out["msg"]
    assert str(lock.path) in out["msg"]
    assert out["lock"] == first["lock"] and out["expired"] is False
    assert lock.path.read_bytes() == before
    # A token of its own does not make another run the holder either.
    out = lock("take", ok=False, owner_token="bobs-token", **BOB)
    assert "held by alice@laptop" in out["msg"]


def test_taking_again_with_the_same_token_is_unchanged(lock):
    first = lock("take", **ALICE)
    before = lock.path.read_bytes()
    out = lock("take", owner_token=first["token"], now="2026-11-26T04:40:00Z", **ALICE)
    assert out["changed"] is False and out["lock"] == first["lock"] and "diff" not in out
    assert out["token"] == first["token"]
    assert lock.path.read_bytes() == before


def test_take_uses_the_owner_token_it_is_given(lock):
    out = lock("take", owner_token="run-20261126T0412", **ALICE)
    assert out["token"] == content(lock.path)["token"] == "run-20261126T0412"


def test_an_expired_lock_is_only_broken_with_break_expired(lock):
    first = lock("take", ttl=60, **ALICE)
    before = lock.path.read_bytes()
    later = "2026-11-26T04:20:00Z"
    out = lock("take", ok=False, now=later, **BOB)
    assert "held by alice@laptop" in out["msg"] and "expired at 2026-11-26T04:13:00Z" in out[
        "msg"]
    assert "break_expired=true breaks it" in out["msg"]
    assert out["expired"] is True and lock.path.read_bytes() == before
    out = lock("take", now=later, break_expired=True, **BOB)
    assert out["changed"] is True and out["broken"] == first["lock"]
    assert out["lock"] == content(lock.path) and out["lock"]["holder"] == BOB["holder"]
    assert out["token"] != first["token"] and out["lock"]["started"] == later
    # The old run's token no longer releases anything.
    out = lock("release", ok=False, owner_token=first["token"])
    assert "held by bob@ci" in out["msg"]


def test_break_expired_does_not_break_a_live_lock(lock):
    lock("take", ttl=3600, **ALICE)
    out = lock("take", ok=False, break_expired=True, now="2026-11-26T05:00:00Z", **BOB)
    assert "held by alice@laptop" in out["msg"] and content(lock.path)["holder"] == ALICE[
        "holder"]


def test_an_own_expired_lock_is_renewed(lock):
    first = lock("take", ttl=60, **ALICE)
    out = lock("take", ttl=60, owner_token=first["token"], now="2026-11-26T04:20:00Z", **ALICE)
    assert out["changed"] is True and out["broken"] is None and out["expired"] is False
    assert content(lock.path)["expires"] == "2026-11-26T04:21:00Z"
    assert content(lock.path)["token"] == first["token"]


def test_concurrent_takes_let_exactly_one_run_in(tmp_path):
    path = tmp_path / "deploy.lock"
    procs = []
    for n in range(6):
        args = tmp_path / f"args{n}.json"
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
            "path": str(path), "action": "take", "holder": f"run{n}", "reason": "race"}}))
        procs.append(subprocess.Popen(module_command("deploy_lock", args),
                                      stdout=subprocess.PIPE, text=True))
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    winners = [r for r in results if not r.get("failed")]
    assert len(winners) == 1, results
    holder = winners[0]["lock"]["holder"]
    assert content(path)["holder"] == holder
    assert all(f"deploy lock held by {holder} since" in r["msg"]
               for r in results if r.get("failed")), results


def test_a_lock_created_after_the_look_still_stops_the_take(tmp_path):
    # A lock that appears between the look and the create, taken by something that does
    # not flock the directory (a shell, another tool): only O_EXCL stops this run.
    module = load_module("deploy_lock")
    path = tmp_path / "deploy.lock"
    path.write_text(json.dumps({**as_lock(BOB), "started": T0, "expires": "2026-11-26T05:00:00Z",
                                "token": "bobs"}))
    real = module.read_lock
    looks = []

    def look_too_early(lock_path):
        looks.append(lock_path)
        return None if len(looks) == 1 else real(lock_path)

    module.read_lock = look_too_early
    params = {"path": str(path), "owner_token": None, "ttl": 60, "break_expired": False,
              **ALICE}
    with pytest.raises(module.LockError, match="deploy lock held by bob@ci run"):
        module.take(params, module.parse_time(T0), check_mode=False)
    assert content(path)["holder"] == BOB["holder"] and len(looks) == 2


def test_a_take_waits_for_another_run_looking_at_the_lock(lock):
    with held_flock(lock.path.parent):
        taker = threading.Thread(target=lock, args=("take",), kwargs=ALICE)
        taker.start()
        taker.join(0.1)
        assert taker.is_alive() and not lock.path.exists()
    taker.join(5)
    assert content(lock.path)["holder"] == ALICE["holder"]


# -- release ---------------------------------------------------------------------------

def test_release_with_the_token_removes_the_lock(lock):
    taken = lock("take", **ALICE)
    out = lock("release", owner_token=taken["token"])
    assert out["changed"] is True and out["lock"] is None
    assert out["released"] == taken["lock"]
    assert out["diff"]["after"] == "" and taken["token"] in out["diff"]["before"]
    assert not lock.path.exists()


def test_releasing_an_absent_lock_is_unchanged(lock):
    out = lock("release", owner_token="whatever")
    assert (out["changed"], out["lock"], out["released"]) == (False, None, None)


@pytest.mark.parametrize("token", ["not-alices", None])
def test_release_with_another_or_no_token_fails_naming_the_holder(lock, token):
    lock("take", **ALICE)
    before = lock.path.read_bytes()
    args = {"owner_token": token} if token else {}
    out = lock("release", ok=False, **args)
    assert out["msg"].startswith("deploy lock held by alice@laptop run 20261126T0412 since ")
    assert "force=true" in out["msg"] and lock.path.read_bytes() == before


def test_force_releases_whoever_holds_the_lock(lock):
    taken = lock("take", **ALICE)
    out = lock("release", force=True)
    assert out["changed"] is True and out["released"] == taken["lock"]
    assert not lock.path.exists()


# -- check mode ------------------------------------------------------------------------

def test_check_mode_take_reports_the_lock_and_writes_nothing(lock):
    out = lock("take", check_mode=True, **ALICE)
    assert out["changed"] is True and out["lock"]["holder"] == ALICE["holder"]
    assert "diff" in out and not lock.path.exists()
    assert list(lock.path.parent.iterdir()) == []


def test_check_mode_take_still_fails_on_a_held_lock(lock):
    lock("take", **ALICE)
    out = lock("take", check_mode=True, ok=False, **BOB)
    assert "held by alice@laptop" in out["msg"]


def test_check_mode_break_and_release_write_nothing(lock):
    first = lock("take", ttl=60, **ALICE)
    before = lock.path.read_bytes()
    out = lock("take", check_mode=True, break_expired=True, now="2026-11-26T05:00:00Z", **BOB)
    assert out["changed"] is True and out["broken"] == first["lock"]
    out = lock("release", check_mode=True, owner_token=first["token"])
    assert out["changed"] is True and out["released"] == first["lock"]
    out = lock("release", check_mode=True, force=True)
    assert out["changed"] is True
    assert lock.path.read_bytes() == before
    assert [p.name for p in lock.path.parent.iterdir()] == ["deploy.lock"]


# -- refusals --------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "{not json", '{"holder": "x"}', "[1]"])
def test_a_file_that_is_not_a_lock_fails_and_only_force_removes_it(lock, text):
    lock.path.write_text(text)
    for action, args in [("show", {}), ("take", ALICE), ("release", {"owner_token": "t"})]:
        out = lock(action, ok=False, **args)
        assert f"{lock.path} is not a deploy lock" in out["msg"], out["msg"]
        assert "action=release force=true" in out["msg"]
        assert lock.path.read_text() == text
    assert lock("release", force=True)["changed"] is True and not lock.path.exists()


@pytest.mark.parametrize(("args", "why"), [
    ({"action": "take"}, "holder"),
    ({"action": "take", "holder": " "}, "holder must name who takes the lock"),
    ({"action": "take", "holder": "a", "ttl": 0}, "ttl must be 1 second or more"),
    ({"action": "take", "holder": "a", "owner_token": ""}, "owner_token must not be empty"),
])
def test_bad_parameters_fail(lock, args, why):
    out = lock(ok=False, **args)
    assert why in out["msg"] and not lock.path.exists()


def test_a_take_without_the_directory_fails_clearly(tmp_path):
    path = tmp_path / "missing" / "deploy.lock"
    out = run_module("deploy_lock", {"path": str(path), "action": "take", **ALICE})
    assert out["failed"] and "its directory does not exist" in out["msg"]
    out = run_module("deploy_lock", {"path": str(path), "action": "show"})
    assert out["lock"] is None and not out.get("failed")
