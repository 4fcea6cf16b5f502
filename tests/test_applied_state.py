"""applied_state records what a complete deploy left on a host and tells a later run
whether it still holds: the fingerprint, the files under the recorded paths, the units.

Each test runs the module in-process on a record in a scratch directory. systemctl is a
stand-in (AnsibleModule.run_command patched) that answers `systemctl show` from a table.
"""

import json
import os
import re

import pytest
from ansible.module_utils.basic import AnsibleModule
from gantry_modules import load_module, run_module

FP = "9c1d" * 16
CHANGED = "changed since the last complete deploy: "


class Host:
    """A scratch host: a config directory, a link, a missing path, two running units."""

    def __init__(self, root):
        self.root = root
        self.path = root / "applied.json"
        self.lock = root / "deploy.lock"
        self.etc = root / "etc" / "shop"
        self.etc.mkdir(parents=True)
        (self.etc / "shop.env").write_text("A=1\n")
        (self.etc / "shop.env").chmod(0o644)
        self.link = root / "current"
        self.link.symlink_to("releases/r1")
        self.missing = root / "nginx.conf"
        self.paths = [str(self.etc), str(self.link), str(self.missing)]
        self.units = {"shop@a.service": ("active", "enabled"),
                      "nginx.service": ("active", "enabled")}
        self.calls = []

    def systemctl(self, args):
        self.calls.append(args)
        assert args[:3] == ["systemctl", "show", "--property=Id,ActiveState,UnitFileState"]
        blocks = []
        for unit in args[3:]:
            active, unit_file = self.units.get(unit, ("inactive", ""))
            blocks.append(f"Id={unit}\nActiveState={active}\nUnitFileState={unit_file}\n")
        return 0, "\n".join(blocks), ""

    def __call__(self, action="check", check_mode=False, **args):
        args = {"path": str(self.path), "action": action, "fingerprint": FP} | args
        out = run_module("applied_state", args, check_mode=check_mode)
        assert not out.get("failed"), out
        return out

    def record(self, **args):
        args = {"paths": self.paths, "units": ["shop@a.service", "nginx.service"]} | args
        return self("record", **args)

    def check(self, **args):
        return self("check", lock_path=str(self.lock), **args)


@pytest.fixture
def host(tmp_path, monkeypatch):
    host = Host(tmp_path)
    monkeypatch.setattr(AnsibleModule, "run_command",
                        lambda _module, args, **_kwargs: host.systemctl(args))
    return host


# -- record ----------------------------------------------------------------------------

def test_record_writes_the_file(host):
    tree_digest = load_module("applied_state").tree_digest
    out = host.record(units=["shop@a.service", "nginx.service", "shop@a.service"])
    data = json.loads(host.path.read_text())
    assert out["changed"] is True and out["record"] == data
    assert data["fingerprint"] == FP
    assert data["paths"] == {str(host.link): tree_digest(str(host.link)),
                             str(host.etc): tree_digest(str(host.etc)),
                             str(host.missing): "missing"}
    assert re.fullmatch(r"[0-9a-f]{64}", data["paths"][str(host.etc)])
    assert data["units"] == ["nginx.service", "shop@a.service"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["at"])


def test_the_same_record_again_changes_nothing(host):
    host.record()
    host.path.write_text(host.path.read_text().replace(
        json.loads(host.path.read_text())["at"], "2020-01-01T00:00:00Z"))
    before = (host.path.read_bytes(), os.stat(host.path).st_mtime_ns)
    out = host.record()
    assert out["changed"] is False
    assert out["record"]["at"] == "2020-01-01T00:00:00Z"
    assert (host.path.read_bytes(), os.stat(host.path).st_mtime_ns) == before


def test_record_in_check_mode_writes_nothing(host):
    out = host.record(check_mode=True)
    assert out["changed"] is True and out["record"]["fingerprint"] == FP
    assert list(host.root.glob("applied*")) == [] and list(host.root.glob(".applied-*")) == []


def test_record_diff_shows_before_and_after(host):
    first = host.record()["record"]
    out = host.record(fingerprint="other")
    assert json.loads(out["diff"]["before"]) == first
    assert json.loads(out["diff"]["after"]) == out["record"]
    assert out["record"]["fingerprint"] == "other"
    assert host("record", path=str(host.root / "new.json"))["diff"]["before"] == ""


# -- check -----------------------------------------------------------------------------

def test_check_without_a_record(host):
    out = host.check()
    assert out["matches"] is False and out["changed"] is False
    assert len(out["reasons"]) == 1 and "no record" in out["reasons"][0]


def test_check_matches_what_was_recorded(host):
    host.record()
    out = host.check()
    assert (out["matches"], out["reasons"], out["changed"]) == (True, [], False)
    assert host.calls[-1][3:] == ["nginx.service", "shop@a.service"]


def test_check_with_another_fingerprint(host):
    host.record()
    out = host.check(fingerprint="other")
    assert out["matches"] is False
    assert out["reasons"] == [
        "the release, the inputs or Gantry changed since the last complete deploy"]


def edit(host):
    (host.etc / "shop.env").write_text("A=2\n")
    return host.etc


def chmod(host):
    (host.etc / "shop.env").chmod(0o640)
    return host.etc


def add_file(host):
    (host.etc / "extra.conf").write_text("")
    return host.etc


def rename(host):
    (host.etc / "shop.env").rename(host.etc / "shop.env.bak")
    return host.etc


def retarget(host):
    host.link.unlink()
    host.link.symlink_to("releases/r2")
    return host.link


def create_missing(host):
    host.missing.write_text("")
    return host.missing


@pytest.mark.parametrize("change", [edit, chmod, add_file, rename, retarget,
                                    create_missing])
def test_check_names_a_changed_path(host, change):
    host.record()
    path = change(host)
    out = host.check()
    assert out["matches"] is False
    assert out["reasons"] == [CHANGED + str(path)]


@pytest.mark.parametrize("state", [("inactive", "enabled"), ("active", "disabled"),
                                   ("active", ""), None])
def test_check_names_a_unit_not_active_and_enabled(host, state):
    host.record()
    if state is None:
        del host.units["shop@a.service"]  # systemd does not know it
    else:
        host.units["shop@a.service"] = state
    out = host.check()
    assert out["matches"] is False
    assert out["reasons"] == ["not active and enabled: shop@a.service"]


def test_check_while_a_deploy_holds_the_lock(host):
    host.record()
    host.lock.write_text("{}")
    out = host.check()
    assert out["matches"] is False
    assert len(out["reasons"]) == 1 and "lock" in out["reasons"][0]
    assert str(host.lock) in out["reasons"][0]


@pytest.mark.parametrize("lock, token, held", [
    ('{"token": "ours"}', "ours", False),
    ('{"token": "theirs"}', "ours", True),
    ('{"token": "ours"}', None, True),
    ("not json", "ours", True),
    ('["ours"]', "ours", True),
])
def test_check_ignores_only_the_lock_this_run_holds(host, lock, token, held):
    host.record()
    host.lock.write_text(lock)
    out = host.check(**({"lock_token": token} if token else {}))
    assert out["matches"] is not held
    assert any("lock" in reason for reason in out["reasons"]) is held


def test_check_changes_nothing(host):
    host.record()
    edit(host)
    before = {p.name: p.read_bytes() for p in host.root.iterdir() if p.is_file()}
    out = host.check(fingerprint="other")
    assert out["changed"] is False and out["matches"] is False
    assert {p.name: p.read_bytes() for p in host.root.iterdir() if p.is_file()} == before


def test_check_with_a_corrupt_record(host):
    host.path.write_text("{not json")
    out = host.check()
    assert out["matches"] is False and out["changed"] is False
    assert out["reasons"] == [f"{host.path} is not a record this module wrote"]
    assert host.path.read_text() == "{not json"


@pytest.mark.parametrize("content", ['{"fingerprint": "f", "paths": ["/etc"]}',
                                     '{"fingerprint": "f", "units": "nginx.service"}',
                                     '["not", "a", "dict"]'])
def test_check_with_a_record_of_another_shape(host, content):
    host.path.write_text(content)
    out = host.check()
    assert out["matches"] is False
    assert out["reasons"] == [f"{host.path} is not a record this module wrote"]


def test_a_unit_named_by_an_alias_is_matched_by_position(host, monkeypatch):
    host.record(units=["nginx"])
    # systemd answers under the unit's own name, not the alias it was asked about
    monkeypatch.setattr(AnsibleModule, "run_command", lambda _module, args, **_kwargs: (
        0, "Id=nginx.service\nActiveState=active\nUnitFileState=enabled\n", ""))
    assert host.check()["matches"] is True
