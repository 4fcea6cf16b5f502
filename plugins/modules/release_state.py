#!/usr/bin/python
"""Keep one app's release states on its host: what is active, what was good, what failed."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_state
short_description: Record an app's releases and their states in a JSON file on the host
description:
  - Keeps, for one app, which releases a host has, in which state each is, and who deployed
    it with which build and settings. The state is one JSON file, O(path), so a later run
    (a rollback, the next deploy, a prune) decides from what happened on the host rather
    than from what a controller remembers.
  - 'The file holds C({"version": 1, "releases": {<id>: {...}}}).
    Each release has C(state) (V(staged), V(active), V(superseded), V(failed) or V(bad)),
    C(build_digest), C(settings) (name to sha256), C(deployed_by), C(deployed_at),
    C(state_changed_at) (ISO-8601 UTC), when given C(instance), and C(pruned_at) (ISO-8601
    UTC) on a V(bad) release whose files a prune removed.'
  - V(staged) is recorded but not serving; V(active) serves (one release at most);
    V(superseded) served and was replaced while good; V(failed) failed a gate during a
    deploy; V(bad) was judged bad after it served. V(active) and V(superseded) releases are
    the good ones.
  - The file is replaced atomically (a temporary file in the same directory, written and
    synced, then renamed over it) with mode C(0644), owned by root when the module runs as
    root. Its directory must exist. Runs that change it on the same host wait for each other.
  - A file that is not valid JSON or not a release state fails the task, naming the file
    and the error. It is never replaced; move it away or fix it by hand.
  - With O(ledger_path), every change also appends one JSON line to the ledger (an
    append-only history of the app's deploys); reads and runs that change nothing append
    nothing.
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
options:
  path:
    description:
      - The state file, such as C(/srv/<app>/releases.json). A file that does not exist is
        an empty state.
    type: path
    required: true
  ledger_path:
    description:
      - JSON lines file every change is appended to, such as C(/srv/<app>/ledger.jsonl).
        Each line holds C(at), C(by), C(action), C(release), C(from_state), C(to_state),
        the fields of O(entry), and C(superseded) (the release an O(action=activate)
        replaced) where it applies. O(action=prune_plan) with O(forget=true) writes one line
        per release it forgets and per V(bad) one it marks pruned (C(to_state) V(bad)).
        Unset, no ledger is written.
    type: path
  action:
    description:
      - V(read) returns the state. V(record) adds or updates O(release) as V(staged).
        V(activate) makes O(release) the active one. V(mark) sets the state of O(release).
        V(prune_plan) lists the releases to remove.
    type: str
    choices: [read, record, activate, mark, prune_plan]
    default: read
  release:
    description:
      - Release id (as the directory under C(<root>/releases/) is named, letters, digits,
        C(.), C(_) and C(-), 64 at most). Required by V(record), V(activate) and V(mark).
    type: str
  build_digest:
    description: Digest of the release's build. Required by V(record).
    type: str
  settings:
    description:
      - Settings the release runs with, file or setting name to its sha256, stored in the
        release by V(record).
    type: dict
    default: {}
  instance:
    description:
      - Instance the release runs in, stored by V(record) (optional).
    type: str
  deployed_by:
    description:
      - Who runs the deploy (such as C(alice@laptop run 20261126T0412)). Stored as the
        release's C(deployed_by) by V(record) and as C(by) of every ledger line. Defaults to
        the user the module runs as.
    type: str
    aliases: [by]
  state:
    description: New state of O(release) for V(mark).
    type: str
    choices: [failed, bad, superseded]
  force:
    description:
      - Allow what is refused otherwise because it would leave the state wrong about what
        serves or what is good, or bring back a release judged bad; V(mark) of the active
        release (switch to another one first), V(mark) of a V(staged) release as
        V(superseded) (it never served), V(activate) of a V(failed) or V(bad) release and
        V(record) of a V(bad) one. V(activate) of a release with C(pruned_at), or V(mark) of
        one as V(superseded), is refused even so, as its files are gone; V(record) it again
        (a deploy) first.
    type: bool
    default: false
  keep:
    description:
      - For V(prune_plan), how many good releases to keep, the newest first (1 or more).
        Newest is by C(state_changed_at), the time a release became active or was superseded.
    type: int
    default: 3
  protect:
    description: For V(prune_plan), release ids never to remove, such as the one being deployed.
    type: list
    elements: str
    default: []
  forget:
    description:
      - For V(prune_plan), also drop the releases in RV(remove) from the state file. Without
        it the state is not changed and the caller forgets them once their directories are gone.
      - A V(bad) release is not dropped but gets C(pruned_at), so that V(record) still refuses
        it without O(force); the oldest of these (by C(state_changed_at)) beyond the newest 20
        are dropped.
    type: bool
    default: false
  entry:
    description:
      - Extra fields for the ledger line of this change, any of C(outcome) (string),
        C(seconds) (number) and C(message) (string).
    type: dict
    default: {}
  now:
    description:
      - For tests only. The time to use instead of the clock, ISO-8601 (a time without
        zone is read as UTC).
    type: str
notes:
  - Supports check mode (the result and the diff are computed, nothing is written) and
    diff mode (the state file before and after).
  - V(prune_plan) removes no directory itself; the caller deletes what RV(remove) names.
    It never lists the active release, the last good one (RV(last_good)), any in
    O(protect), a V(staged) one (it may be the deploy under way; mark an abandoned one
    V(failed) to have it pruned), nor the release whose instance a restart is owed to.
  - A V(bad) release with C(pruned_at) is not listed again, its files are already gone.
  - Python 3 standard library only.
"""

EXAMPLES = r"""
- name: Read the releases of the host
  release_state:
    path: /srv/shop/releases.json
  register: releases

- name: Record the release being deployed
  release_state:
    path: /srv/shop/releases.json
    ledger_path: /srv/shop/ledger.jsonl
    action: record
    release: "{{ release_id }}"
    build_digest: "{{ build.digest }}"
    settings: "{{ settings_digests }}"
    instance: "{{ new_instance }}"
    deployed_by: "{{ deploy_holder }}"

- name: Make it the active release once the gate passed
  release_state:
    path: /srv/shop/releases.json
    ledger_path: /srv/shop/ledger.jsonl
    action: activate
    release: "{{ release_id }}"
    deployed_by: "{{ deploy_holder }}"
    entry:
      outcome: gate passed
      seconds: "{{ gate_seconds }}"

- name: Record a failed gate
  release_state:
    path: /srv/shop/releases.json
    ledger_path: /srv/shop/ledger.jsonl
    action: mark
    release: "{{ release_id }}"
    state: failed
    deployed_by: "{{ deploy_holder }}"
    entry:
      outcome: health gate failed
      message: "{{ gate.msg }}"

- name: Plan what to prune, keeping three good releases
  release_state:
    path: /srv/shop/releases.json
    action: prune_plan
    keep: 3
    protect: ["{{ release_id }}"]
  register: prune

- name: Remove their directories
  ansible.builtin.file:
    path: "/srv/shop/releases/{{ item }}"
    state: absent
  loop: "{{ prune.remove }}"

- name: Then forget them
  release_state:
    path: /srv/shop/releases.json
    ledger_path: /srv/shop/ledger.jsonl
    action: prune_plan
    keep: 3
    protect: ["{{ release_id }}"]
    forget: true
"""

RETURN = r"""
state:
  description: The whole release state after the task (what it would be, in check mode).
  returned: always
  type: dict
  sample:
    version: 1
    releases:
      "20261126T0412-3f2a9c1":
        state: active
        build_digest: "sha256:3f2a9c1..."
        settings: {"shop.env": "9b1c..."}
        deployed_by: alice@laptop run 20261126T0412
        deployed_at: "2026-11-26T04:12:31Z"
        state_changed_at: "2026-11-26T04:14:02Z"
        instance: 20261126T0412-3f2a9c1-9b1c0d2e
active:
  description: Id of the active release, or null.
  returned: always
  type: str
  sample: 20261126T0412-3f2a9c1
last_good:
  description:
    - The most recent good release, null when there is none. That is the active release
      when there is one (it is good now), else the superseded one with the latest
      C(state_changed_at) (when it stopped serving).
  returned: always
  type: str
  sample: 20261126T0412-3f2a9c1
good:
  description:
    - Ids of the good releases, newest first as for RV(last_good); the active one, then the
      superseded ones by C(state_changed_at). The second is where a rollback goes back to.
  returned: always
  type: list
  elements: str
  sample: ["20261126T0412-3f2a9c1", "20261120T1630-81bd03e"]
remove:
  description:
    - Release ids to remove, the V(failed) and V(bad) ones first (not a V(bad) one with
      C(pruned_at), already removed), then the good ones beyond O(keep), each group oldest
      first.
  returned: when O(action=prune_plan)
  type: list
  elements: str
  sample: ["20261118T0900-c0ffee1", "20261101T1200-0ddba11"]
"""

import contextlib
import json
import os
import pwd
import re
from datetime import UTC, datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gantry.deploy.plugins.module_utils.gantry_files import (
    DirectoryLock,
    replace_file,
)

VERSION = 1
STATES = ("staged", "active", "superseded", "failed", "bad")
GOOD = ("active", "superseded")
# The same rule as flask_release_id: ids name directories the caller deletes, so one that
# could climb out of the releases directory must never get into the state.
RELEASE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
ENTRY_FIELDS = {"outcome": str, "seconds": (int, float), "message": str}
EPOCH = datetime.min.replace(tzinfo=UTC)
# Pruned bad records stay so that deploying one of them again is still refused; only the
# newest are worth keeping, the record must not grow with every bad release forever.
PRUNED_BAD_KEPT = 20


class StateError(Exception):
    """A request the state refuses, or a state file that cannot be used."""


def empty_state():
    return {"version": VERSION, "releases": {}}


def format_time(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    """The moment an ISO-8601 string names; a string that names none sorts first."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return EPOCH
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def render(state):
    return json.dumps(state, indent=2, sort_keys=True) + "\n"


def validate(path, data):
    """Raise StateError unless data is a release state this module can change safely."""
    def bad(why):
        raise StateError(f"{path} is not a Gantry release state: {why}. It was left as it "
                         "is; fix it or move it away")

    if not isinstance(data, dict):
        bad(f"the top level is a {type(data).__name__}, not an object")
    if data.get("version") != VERSION:
        bad(f"version is {data.get('version')!r}, this module reads version {VERSION}")
    releases = data.get("releases")
    if not isinstance(releases, dict):
        bad("'releases' is not an object")
    active = []
    for rid, release in releases.items():
        if not RELEASE_ID_RE.match(rid):
            bad(f"release id {rid!r} is not a valid release id")
        if not isinstance(release, dict) or release.get("state") not in STATES:
            bad(f"release {rid} has no valid state (one of {', '.join(STATES)})")
        if release["state"] == "active":
            active.append(rid)
    if len(active) > 1:
        bad(f"more than one release is active ({', '.join(sorted(active))})")


def load(path):
    """Return (state, text of the file or None when there is none)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return empty_state(), None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read the release state {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateError(f"the release state {path} is not valid JSON ({exc}). It was left as "
                         "it is; fix it or move it away") from exc
    validate(path, data)
    # Written by earlier versions, never read: an interrupted deploy needs no marker, its
    # settings digest names a new instance at the next run.
    data.pop("pending_restart", None)
    return data, text


def summary(state):
    """active, last_good and good of a state."""
    releases = state["releases"]
    # The active release is good now, later than any time a superseded one was last seen
    # good, whatever its state_changed_at says (a failed release marked superseded again
    # has a newer one, but never served after the active one).
    good = sorted(
        (rid for rid, rel in releases.items() if rel["state"] in GOOD),
        key=lambda rid: (releases[rid]["state"] == "active",
                         parse_time(releases[rid].get("state_changed_at")),
                         parse_time(releases[rid].get("deployed_at")), rid),
        reverse=True)
    active = next((rid for rid, rel in releases.items() if rel["state"] == "active"), None)
    return {"active": active, "last_good": good[0] if good else None, "good": good}


def require_release(state, rid):
    if rid not in state["releases"]:
        known = ", ".join(sorted(state["releases"])) or "none"
        raise StateError(f"release {rid} is not recorded (recorded: {known}); record it first")
    return state["releases"][rid]


def set_state(release, new_state, now):
    release["state"] = new_state
    release["state_changed_at"] = now


def pruned_error(rid, release, doing):
    return (f"the files of release {rid} were removed by a prune at {release['pruned_at']}, "
            f"force=true does not bring them back; deploy it again (action record, with "
            f"force=true if it is bad) before {doing}")


def line(action, rid=None, from_state=None, to_state=None, **extra):
    return {"action": action, "release": rid, "from_state": from_state,
            "to_state": to_state, **extra}


def do_record(state, params, now, by):
    rid = params["release"]
    release = state["releases"].get(rid)
    before = release["state"] if release else None
    if before == "bad" and not params["force"]:
        raise StateError(f"release {rid} is marked bad (since {release.get('state_changed_at')}"
                         "); deploying it again needs force=true")
    wanted = {"build_digest": params["build_digest"], "settings": params["settings"]}
    if params["instance"] is not None:
        wanted["instance"] = params["instance"]
    # The active release stays active: recording it again is a rerun of its own deploy.
    to_state = "active" if before == "active" else "staged"
    if release and before == to_state and all(release.get(k) == v for k, v in wanted.items()):
        return []
    if release is None:
        release = state["releases"][rid] = {"state_changed_at": now}
    release.update(wanted, deployed_by=by, deployed_at=now)
    # A deploy installs its files again before recording it.
    release.pop("pruned_at", None)
    if before != to_state:
        set_state(release, to_state, now)
    return [line("record", rid, before, to_state)]


def do_activate(state, params, now, by):
    rid = params["release"]
    release = require_release(state, rid)
    before = release["state"]
    if before == "active":
        return []
    if "pruned_at" in release:
        raise StateError(pruned_error(rid, release, "activating"))
    if before in ("failed", "bad") and not params["force"]:
        raise StateError(f"release {rid} is marked {before} (since "
                         f"{release.get('state_changed_at')}); activating it needs force=true")
    previous = summary(state)["active"]
    if previous is not None:
        set_state(state["releases"][previous], "superseded", now)
    set_state(release, "active", now)
    extra = {"superseded": previous} if previous else {}
    return [line("activate", rid, before, "active", **extra)]


def do_mark(state, params, now, by):
    rid, new_state = params["release"], params["state"]
    release = require_release(state, rid)
    before = release["state"]
    if before == new_state:
        return []
    # Any other state for the active release would say nothing serves while it still does.
    if before == "active" and not params["force"]:
        raise StateError(f"release {rid} is the active one; switch to another release (action "
                         f"activate) before marking it {new_state}, or pass force=true")
    # A release that never served is not good: as superseded it could become the last good
    # one, the release a rollback goes back to.
    if before == "staged" and new_state == "superseded" and not params["force"]:
        raise StateError(f"release {rid} is staged and never served; mark it failed, activate "
                         "it, or pass force=true to call it superseded")
    # A good release is one a rollback may go back to, which needs its files.
    if new_state == "superseded" and "pruned_at" in release:
        raise StateError(pruned_error(rid, release, "marking it superseded"))
    set_state(release, new_state, now)
    return [line("mark", rid, before, new_state)]


def plan_prune(state, keep, protect):
    """(remove, expired) for a prune, each oldest first.

    remove: ids whose files go, failed ones and bad ones not pruned yet, then good ones
    beyond the keep newest. expired: bad ones, pruned before or in remove now, beyond the
    PRUNED_BAD_KEPT newest, whose records go as well.
    """
    releases = state["releases"]
    info = summary(state)
    kept = set(protect) | {info["active"], info["last_good"]}

    def oldest_first(ids):
        return sorted(ids, key=lambda rid: (parse_time(releases[rid].get("state_changed_at")),
                                            rid))

    broken = oldest_first(rid for rid, rel in releases.items()
                          if rel["state"] in ("failed", "bad") and rid not in kept)
    bad = [rid for rid in broken if releases[rid]["state"] == "bad"]
    surplus = [rid for rid in reversed(info["good"][keep:]) if rid not in kept]
    remove = [rid for rid in broken if rid not in bad or "pruned_at" not in releases[rid]]
    return remove + surplus, bad[:-PRUNED_BAD_KEPT]


def do_prune_plan(state, params, now, by):
    remove, expired = plan_prune(state, params["keep"], params["protect"])
    lines = []
    if params["forget"]:
        releases = state["releases"]
        for rid in remove + [rid for rid in expired if rid not in remove]:
            if releases[rid]["state"] == "bad" and rid not in expired:
                # Kept so that deploying it again is still refused without force.
                releases[rid]["pruned_at"] = now
                lines.append(line("prune_plan", rid, "bad", "bad"))
            else:
                lines.append(line("prune_plan", rid, releases.pop(rid)["state"], None))
    return lines, remove


ACTIONS = {
    "record": do_record,
    "activate": do_activate,
    "mark": do_mark,
    "prune_plan": do_prune_plan,
}


def check_params(params):
    errors = []
    release = params["release"]
    if release is not None and not RELEASE_ID_RE.match(release):
        errors.append(f"release {release!r} is not a release id (letters, digits, '.', '_' "
                      "and '-', starting with a letter or digit, 64 at most)")
    for name, value in params["settings"].items():
        if not isinstance(value, str):
            errors.append(f"settings[{name!r}] must be a digest string, got {value!r}")
    entry = params["entry"]
    if isinstance(entry.get("seconds"), str):
        # A templated number can arrive as its string; the ledger wants the number.
        with contextlib.suppress(ValueError):
            entry["seconds"] = float(entry["seconds"])
    for name, value in entry.items():
        kind = ENTRY_FIELDS.get(name)
        if kind is None:
            errors.append(f"entry field {name!r} is not one of {', '.join(ENTRY_FIELDS)}")
        elif not isinstance(value, kind) or isinstance(value, bool):
            errors.append(f"entry field {name} has the wrong type: {value!r}")
    if params["keep"] < 1:
        errors.append(f"keep must be 1 or more, got {params['keep']}")
    for name in ("instance", "build_digest", "deployed_by"):
        if params[name] is not None and not params[name].strip():
            errors.append(f"{name} must not be empty")
    return errors


def append_ledger(path, lines):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        # Only a ledger this module creates gets its owner and mode; one that exists keeps
        # whatever an operator gave it.
        os.fchmod(fd, 0o644)
        if os.geteuid() == 0:
            os.fchown(fd, 0, 0)
    except FileExistsError:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        # One write: with O_APPEND the lines land whole even if another writer appends too.
        data = "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in lines)
        os.write(fd, data.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def current_user():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def run(params):
    """Apply the action in memory; return (result, ledger lines, new file content)."""
    now = format_time(parse_time(params["now"]) if params["now"] else datetime.now(UTC))
    by = params["deployed_by"] or current_user()

    state, text = load(params["path"])
    before = render(state) if text is not None else ""
    result = {}
    lines = []
    action = params["action"]
    if action == "prune_plan":
        lines, result["remove"] = do_prune_plan(state, params, now, by)
    elif action != "read":
        lines = ACTIONS[action](state, params, now, by)
    after = render(state)
    # Every action returns a ledger line exactly for each change it made.
    changed = bool(lines)
    result.update(changed=changed, state=state, **summary(state))
    if changed:
        result["diff"] = {"before_header": params["path"], "after_header": params["path"],
                          "before": before, "after": after}
    extra = {k: params["entry"][k] for k in ENTRY_FIELDS if k in params["entry"]}
    return result, [{"at": now, "by": by, **entry, **extra} for entry in lines], after


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "ledger_path": {"type": "path"},
            "action": {"type": "str", "default": "read",
                       "choices": ["read", "record", "activate", "mark", "prune_plan"]},
            "release": {"type": "str"},
            "build_digest": {"type": "str"},
            "settings": {"type": "dict", "default": {}},
            "instance": {"type": "str"},
            "deployed_by": {"type": "str", "aliases": ["by"]},
            "state": {"type": "str", "choices": ["failed", "bad", "superseded"]},
            "force": {"type": "bool", "default": False},
            "keep": {"type": "int", "default": 3},
            "protect": {"type": "list", "elements": "str", "default": []},
            "forget": {"type": "bool", "default": False},
            "entry": {"type": "dict", "default": {}},
            "now": {"type": "str"},
        },
        required_if=[
            ("action", "record", ("release", "build_digest")),
            ("action", "activate", ("release",)),
            ("action", "mark", ("release", "state")),
        ],
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"]
    errors = check_params(params)
    if params["now"]:
        try:
            datetime.fromisoformat(params["now"])
        except ValueError:
            errors.append(f"now must be an ISO-8601 time, got {params['now']!r}")
    if errors:
        module.fail_json(msg="; ".join(errors))

    writes = params["action"] != "read" and not module.check_mode
    if writes and not os.path.isdir(os.path.dirname(path) or "."):
        module.fail_json(msg=f"cannot change the release state {path}: its directory does "
                             "not exist")
    try:
        if writes:
            with DirectoryLock(path):
                result, lines, content = run(params)
                if result["changed"]:
                    replace_file(path, content, ".releases-")
                    if params["ledger_path"] and lines:
                        try:
                            append_ledger(params["ledger_path"], lines)
                        except OSError as exc:
                            module.fail_json(
                                msg=f"the release state {path} was written, but the ledger "
                                    f"{params['ledger_path']} could not be appended to: {exc}",
                                **result)
        else:
            result, _lines, _content = run(params)
    except StateError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"cannot change the release state {path}: {exc}")
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
