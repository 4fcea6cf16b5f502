#!/usr/bin/python
"""Take, show and release the lock that keeps two deploys of one app off a host at once."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Hold a deploy lock file on a host so only one deploy of an app runs there
description:
  - A deploy lock is a JSON file, O(path), holding who took it (C(holder)), why
    (C(message)), when (C(started)), until when it counts (C(expires)) and a C(token) only
    the run that took it knows to pass back.
  - V(take) creates the file with C(O_CREAT|O_EXCL), so of two runs taking it at once one
    gets it and the other fails. A lock held by another run fails the task at once,
    naming its holder, message, start and expiry. A lock past its expiry is not broken
    silently either (its run may still be going, only slower than its O(ttl)); the task
    fails saying so unless O(break_expired=true), which replaces it and returns it as
    RV(broken). Taking a lock whose token is O(owner_token) is taking it again from the
    same run, which changes nothing (an expired one is renewed for O(ttl)).
  - V(release) removes the lock when its token is O(owner_token), or with O(force=true)
    whoever holds it. A lock that is not there is already released.
  - V(show) returns the lock and whether it has expired.
  - Runs of this module on the same host take an exclusive C(flock) on the lock's
    directory while they look at and change the lock, so a reader never sees a lock half
    written, and two runs breaking the same expired lock do not both get it.
  - A lock file that is not a deploy lock (not JSON, or missing a field) fails the task,
    naming the file; remove it with O(action=release) and O(force=true).
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
options:
  path:
    description:
      - The lock file, such as C(/srv/<app>/deploy.lock) or C(/run/lock/gantry-<app>.lock)
        (C(/run) is emptied at boot, which releases every lock). Its directory must exist.
    type: path
    required: true
  action:
    description: V(show), V(take) or V(release) the lock.
    type: str
    choices: [show, take, release]
    default: show
  holder:
    description:
      - Who takes the lock, as people should read it in the refusal another run gets, such
        as C(alice@laptop run 20261126T0412). Required by V(take).
    type: str
  reason:
    description:
      - Why the lock is held, such as C(release freeze for the sale); the lock keeps it as
        its C(message) (an argument of that name is reserved by Ansible).
    type: str
    default: ""
  ttl:
    description:
      - Seconds the lock counts from when it is taken (1 or more). Past them it is
        expired, and another run may break it with O(break_expired=true).
    type: int
    default: 3600
  break_expired:
    description:
      - With V(take), replace a lock that has expired (returned as RV(broken)) instead of
        failing.
    type: bool
    default: false
  owner_token:
    description:
      - The token of the lock, as V(take) returned it (RV(token)). V(take) uses it as the
        new lock's token, and a lock that already has it is this run's own. V(release)
        removes only a lock that has it, unless O(force=true). Without it, V(take) makes
        a random one.
    type: str
  force:
    description: With V(release), remove the lock whoever holds it (or a file that is not a lock).
    type: bool
    default: false
  now:
    description:
      - For tests only. The time to use instead of the clock, ISO-8601 (a time without
        zone is read as UTC).
    type: str
notes:
  - Supports check mode, in which it reports what it would do and writes nothing; V(take)
    still fails on a lock held by another run, as it would for real. Supports diff mode
    (the lock file before and after).
  - The lock is advisory; it keeps out runs that take it, nothing else.
  - Python 3 standard library only.
"""

EXAMPLES = r"""
- name: Take the deploy lock, or stop naming who holds it
  deploy_lock:
    path: /srv/shop/deploy.lock
    action: take
    holder: "{{ lookup('env', 'USER') }}@{{ lookup('pipe', 'hostname') }} run {{ run_id }}"
    reason: "{{ deploy_message | default('deploy') }}"
    ttl: 3600
  register: lock

- name: Deploy
  ansible.builtin.include_role:
    name: flask_release

- name: Release the lock
  deploy_lock:
    path: /srv/shop/deploy.lock
    action: release
    owner_token: "{{ lock.token }}"

- name: Break a lock a killed run left behind, once it expired
  deploy_lock:
    path: /srv/shop/deploy.lock
    action: take
    holder: alice@laptop run 20261126T0930
    break_expired: true

- name: Who holds it?
  deploy_lock:
    path: /srv/shop/deploy.lock
  register: current
"""

RETURN = r"""
lock:
  description:
    - The lock as it is after the task (as it would be, in check mode), or null when there
      is none (after V(release)).
  returned: always
  type: dict
  sample:
    holder: alice@laptop run 20261126T0412
    message: release freeze for the sale
    started: "2026-11-26T04:12:00Z"
    expires: "2026-11-26T05:12:00Z"
    token: 6f1c0c8e4b2a4d7e9a51f3c2b8d0e6a4
expired:
  description: Whether RV(lock) is past its C(expires); false without a lock.
  returned: always
  type: bool
  sample: false
broken:
  description: The expired lock V(take) replaced with O(break_expired=true), else null.
  returned: always
  type: dict
  sample:
    holder: bob@ci run 20261125T2200
    message: ""
    started: "2026-11-25T22:00:00Z"
    expires: "2026-11-25T23:00:00Z"
    token: 0b7c9d2e1f3a4b5c6d7e8f9a0b1c2d3e
released:
  description: The lock V(release) removed (would remove, in check mode), else null.
  returned: always
  type: dict
token:
  description: The token of the lock this run holds after V(take); pass it as O(owner_token).
  returned: when O(action=take)
  type: str
  sample: 6f1c0c8e4b2a4d7e9a51f3c2b8d0e6a4
"""

import contextlib
import json
import os
import secrets
from datetime import UTC, datetime, timedelta

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gantry.deploy.plugins.module_utils.gantry_files import (
    DirectoryLock,
    replace_file,
)

FIELDS = ("holder", "message", "started", "expires", "token")


class LockError(Exception):
    """The lock cannot be taken or released, or the file is not a lock."""

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.result = result


def format_time(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def render(lock):
    return json.dumps(lock, indent=2, sort_keys=True) + "\n" if lock else ""


def read_lock(path):
    """The lock at path, or None when there is none."""
    not_a_lock = (f"{path} is not a deploy lock ({{}}); if no deploy is running, remove it "
                  "with action=release force=true")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"cannot read the deploy lock {path}: {exc}") from exc
    try:
        lock = json.loads(text)
    except ValueError as exc:
        raise LockError(not_a_lock.format(f"not valid JSON: {exc}")) from exc
    if not isinstance(lock, dict):
        raise LockError(not_a_lock.format("not a JSON object"))
    missing = [f for f in FIELDS if not isinstance(lock.get(f), str)]
    if missing:
        raise LockError(not_a_lock.format("no " + ", ".join(missing)))
    try:
        parse_time(lock["expires"])
    except ValueError as exc:
        raise LockError(not_a_lock.format(f"expires is not a time: {exc}")) from exc
    return lock


def is_expired(lock, now):
    return lock is not None and now >= parse_time(lock["expires"])


def describe(lock, path, expired):
    until = f"expired at {lock['expires']}" if expired else f"until {lock['expires']}"
    text = f"deploy lock held by {lock['holder']} since {lock['started']} ({until})"
    if lock["message"]:
        text += f": {lock['message']}"
    return f"{text} [{path}]"


def create_exclusive(path, content):
    """Create path with content; FileExistsError when another run created it first."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, content.encode("utf-8"))
        os.fsync(fd)
    except OSError:
        # An empty lock would stop every later run and name nobody.
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def take(params, now, check_mode):
    path = params["path"]
    token = params["owner_token"] or secrets.token_hex(16)
    new = {
        "holder": params["holder"],
        "message": params["reason"],
        "started": format_time(now),
        "expires": format_time(now + timedelta(seconds=params["ttl"])),
        "token": token,
    }
    current = read_lock(path)
    expired = is_expired(current, now)
    result = {"before": current, "broken": None, "token": token}
    if current is not None:
        if params["owner_token"] and current["token"] == params["owner_token"]:
            if not expired:
                return dict(result, lock=current, changed=False)
            # Still this run's, only slower than its ttl: renewing keeps another run from
            # breaking it halfway through.
            if not check_mode:
                replace_file(path, render(new), ".deploy-lock-")
            return dict(result, lock=new, changed=True)
        if not expired:
            raise LockError(describe(current, path, False), lock=current, expired=False)
        if not params["break_expired"]:
            raise LockError(
                describe(current, path, True) + ". The lock is expired but its run may still "
                "be going; if it is not, break_expired=true breaks it",
                lock=current, expired=True)
        if not check_mode:
            replace_file(path, render(new), ".deploy-lock-")
        return dict(result, lock=new, broken=current, changed=True)
    if not check_mode:
        try:
            create_exclusive(path, render(new))
        except FileExistsError:
            # Taken by a run that does not flock the directory (a shell, another tool).
            other = read_lock(path)
            if other is None:
                raise LockError(f"the deploy lock {path} was taken and released while this "
                                "run took it; run again") from None
            raise LockError(describe(other, path, is_expired(other, now)), lock=other,
                            expired=is_expired(other, now)) from None
    return dict(result, lock=new, changed=True)


def release(params, now, check_mode):
    path = params["path"]
    try:
        current = read_lock(path)
    except LockError:
        if not params["force"] or not os.path.lexists(path):
            raise
        # Not a lock at all: force removes the file as it is.
        if not check_mode:
            os.unlink(path)
        return {"lock": None, "before": None, "released": None, "changed": True}
    if current is None:
        return {"lock": None, "before": None, "released": None, "changed": False}
    if current["token"] != params["owner_token"] and not params["force"]:
        why = "no owner_token was given" if not params["owner_token"] else \
            "owner_token is not its token"
        raise LockError(
            f"{describe(current, path, is_expired(current, now))}; it is not this run's "
            f"({why}), so it was left in place. force=true removes it anyway",
            lock=current, expired=is_expired(current, now))
    if not check_mode:
        os.unlink(path)
    return {"lock": None, "before": current, "released": current, "changed": True}


def run(params, check_mode):
    now = parse_time(params["now"]) if params["now"] else datetime.now(UTC)
    action = params["action"]
    if action == "show":
        lock = read_lock(params["path"])
        return {"lock": lock, "expired": is_expired(lock, now), "broken": None,
                "released": None, "changed": False}
    result = (take if action == "take" else release)(params, now, check_mode)
    result.setdefault("broken", None)
    result.setdefault("released", None)
    result["expired"] = is_expired(result["lock"], now)
    return result


def check_params(params):
    errors = []
    if params["ttl"] < 1:
        errors.append(f"ttl must be 1 second or more, got {params['ttl']}")
    if params["action"] == "take" and not (params["holder"] or "").strip():
        errors.append("holder must name who takes the lock")
    if params["owner_token"] is not None and not params["owner_token"].strip():
        errors.append("owner_token must not be empty")
    if params["now"]:
        try:
            parse_time(params["now"])
        except ValueError:
            errors.append(f"now must be an ISO-8601 time, got {params['now']!r}")
    return errors


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "action": {"type": "str", "default": "show", "choices": ["show", "take", "release"]},
            "holder": {"type": "str"},
            "reason": {"type": "str", "default": ""},
            "ttl": {"type": "int", "default": 3600},
            "break_expired": {"type": "bool", "default": False},
            # Not a secret: it tells runs apart, and anyone who can read the lock sees it.
            # Hidden, it would be masked in the lock and token this module returns.
            "owner_token": {"type": "str", "no_log": False},
            "force": {"type": "bool", "default": False},
            "now": {"type": "str"},
        },
        required_if=[("action", "take", ("holder",))],
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"]
    errors = check_params(params)
    if errors:
        module.fail_json(msg="; ".join(errors))
    failed = {"lock": None, "expired": False, "broken": None, "released": None}
    has_directory = os.path.isdir(os.path.dirname(path) or ".")
    if not has_directory and params["action"] == "take" and not module.check_mode:
        module.fail_json(msg=f"cannot take the deploy lock {path}: its directory does not "
                             "exist", **failed)
    # Without its directory there is no lock: nothing to show or release, and check mode
    # predicts the take of a run that creates the directory first.
    guard = DirectoryLock(path, exclusive=params["action"] != "show" and not module.check_mode) \
        if has_directory else contextlib.nullcontext()
    try:
        with guard:
            result = run(params, module.check_mode)
    except LockError as exc:
        module.fail_json(msg=str(exc), **dict(failed, **exc.result))
    except OSError as exc:
        module.fail_json(msg=f"cannot {params['action']} the deploy lock {path}: {exc}",
                         **failed)
    before = result.pop("before", None)
    if result["changed"] and module._diff:
        result["diff"] = {"before_header": path, "after_header": path,
                          "before": render(before), "after": render(result["lock"])}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
