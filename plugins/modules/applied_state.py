#!/usr/bin/python
"""Record what a complete deploy left on a host, and tell a later run whether it still holds."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: applied_state
short_description: Tell whether a host still holds what the last complete deploy left there
description:
  - A deploy that finished on a host records, in the JSON file O(path), the O(fingerprint)
    of what it applied (a digest the controller computes from the release, the roles'
    inputs and Gantry's own files), a digest of every file under O(paths) (content, link
    target, type, mode, owner and group, per path) and the systemd O(units) that were
    running (V(record)).
  - V(check) reads the record and says whether a run with this O(fingerprint) would find
    nothing to do, that is the same fingerprint, every recorded path as it was recorded,
    every recorded unit active and enabled, and no deploy lock at O(lock_path).
    RV(reasons) names everything that differs, so a run can say why it does the whole
    deploy.
  - V(check) never changes anything. V(record) replaces the file in one step (a reader sees
    the old record or the new one), and changes nothing when the record would stay the same.
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
options:
  path:
    description:
      - The record, such as C(/srv/<app>/applied.json). Its directory must exist; keep it
        where only root and the app's group can read (the fingerprint is a digest of
        inputs that include secrets).
    type: path
    required: true
  action:
    description: V(check) the record against this run, or V(record) what this run left.
    type: str
    choices: [check, record]
    default: check
  fingerprint:
    description: The digest of what this run applies, the same for the same inputs.
    type: str
    required: true
  paths:
    description:
      - With V(record), the files and directories the deploy manages (directories with
        everything under them; links are not followed). A path that does not exist is
        recorded as missing. V(check) uses the paths of the record.
    type: list
    elements: path
    default: []
  units:
    description: With V(record), the systemd units V(check) requires to be active and enabled.
    type: list
    elements: str
    default: []
  lock_path:
    description: With V(check), a deploy lock that, when it exists, means a deploy is under way.
    type: path
  lock_token:
    description:
      - With V(check), the token of the lock this run holds itself (the C(token) module
        C(deploy_lock) returned). A lock at O(lock_path) with this token is no other deploy
        under way; a lock that cannot be read still counts as held.
    type: str
notes:
  - Supports check mode (V(record) reports whether it would change the record and writes
    nothing) and diff mode (the record before and after).
  - Python 3 standard library only.
"""

EXAMPLES = r"""
- name: Read what the last complete deploy left on this host
  applied_state:
    path: /srv/shop/applied.json
    fingerprint: "{{ deploy_fingerprint }}"
    lock_path: /var/lib/gantry/locks/shop.lock
  register: applied

- name: Leave the host alone when it already runs what this run would give it
  ansible.builtin.meta: end_host
  when: applied.matches

- name: Record what the deploy left, after it finished
  applied_state:
    path: /srv/shop/applied.json
    action: record
    fingerprint: "{{ deploy_fingerprint }}"
    paths: [/etc/shop, /etc/systemd/system/shop@.service, /etc/nginx/conf.d/shop.conf]
    units: [shop@a1b2c3d4e5f6-0badf00d.service, nginx.service]
"""

RETURN = r"""
matches:
  description:
    - With V(check), whether the host holds what the record says and the record is of this
      O(fingerprint), so the run has nothing to do there.
  returned: when O(action=check)
  type: bool
  sample: true
reasons:
  description: With V(check), why it does not match; empty when it does.
  returned: when O(action=check)
  type: list
  elements: str
  sample: ["changed since the last complete deploy: /etc/systemd/system/shop@.service"]
record:
  description: The record as it is after the task (as it would be, in check mode), or null.
  returned: always
  type: dict
  sample:
    fingerprint: 9c1d...
    paths: {/etc/shop: 4b7e..., /etc/nginx/conf.d/shop.conf: missing}
    units: [nginx.service]
    at: "2026-11-26T19:20:00Z"
"""

import hashlib
import json
import os
import stat
from datetime import UTC, datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gantry.deploy.plugins.module_utils.gantry_files import replace_file

MISSING = "missing"


def _entry_digest(path, digest):
    """Feed one entry (not followed if a link) into digest: type, mode, owner, content."""
    info = os.lstat(path)
    digest.update(f"{stat.S_IFMT(info.st_mode)} {stat.S_IMODE(info.st_mode):o} "
                  f"{info.st_uid} {info.st_gid}\0".encode())
    if stat.S_ISLNK(info.st_mode):
        digest.update(os.readlink(path).encode())
    elif stat.S_ISREG(info.st_mode):
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    digest.update(b"\0")


def tree_digest(path):
    """A digest of path and, for a directory, everything under it; "missing" when absent."""
    if not os.path.lexists(path):
        return MISSING
    digest = hashlib.sha256()
    _entry_digest(path, digest)
    if os.path.isdir(path) and not os.path.islink(path):
        for top, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(dirs + files):
                entry = os.path.join(top, name)
                digest.update(os.path.relpath(entry, path).encode() + b"\0")
                _entry_digest(entry, digest)
    return digest.hexdigest()


def _render(record):
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def read_record(path):
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def stopped_units(module, units):
    """The units that are not both active and enabled (started at boot)."""
    if not units:
        return []
    # One block per unit, in the order asked, even for a unit systemd does not know;
    # matched by position, as an alias comes back under its unit's own name.
    _rc, out, _err = module.run_command(
        ["systemctl", "show", "--property=Id,ActiveState,UnitFileState", *units])
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in out.strip().split("\n\n")]
    return [unit for unit, state in zip(units, blocks + [{}] * len(units), strict=False)
            if state.get("ActiveState") != "active"
            or state.get("UnitFileState") not in ("enabled", "enabled-runtime")]


def held_by_this_run(lock_path, token):
    if not token:
        return False
    try:
        with open(lock_path, encoding="utf-8") as handle:
            lock = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(lock, dict) and lock.get("token") == token


def check(module, params, record):
    if record is None:
        return ["no record of a complete deploy on this host"]
    if not (isinstance(record.get("fingerprint"), str) and isinstance(record.get("paths", {}), dict)
            and isinstance(record.get("units", []), list)):
        return [f"{params['path']} is not a record this module wrote"]
    reasons = []
    if record["fingerprint"] != params["fingerprint"]:
        reasons.append("the release, the inputs or Gantry changed since the last complete deploy")
    recorded = sorted(record.get("paths", {}).items())
    changed = [path for path, digest in recorded if tree_digest(path) != digest]
    if changed:
        reasons.append("changed since the last complete deploy: " + ", ".join(changed))
    stopped = stopped_units(module, list(record.get("units", [])))
    if stopped:
        reasons.append("not active and enabled: " + ", ".join(stopped))
    if params["lock_path"] and os.path.lexists(params["lock_path"]) \
            and not held_by_this_run(params["lock_path"], params["lock_token"]):
        reasons.append(f"a deploy lock is held ({params['lock_path']})")
    return reasons


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "action": {"type": "str", "choices": ["check", "record"], "default": "check"},
            "fingerprint": {"type": "str", "required": True},
            "paths": {"type": "list", "elements": "path", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
            "lock_path": {"type": "path"},
            "lock_token": {"type": "str", "no_log": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    record = read_record(params["path"])

    if params["action"] == "check":
        reasons = check(module, params, record)
        module.exit_json(changed=False, matches=not reasons, reasons=reasons, record=record)

    new = {
        "fingerprint": params["fingerprint"],
        "paths": {p: tree_digest(p) for p in sorted(set(params["paths"]))},
        "units": sorted(set(params["units"])),
    }
    old = {key: value for key, value in (record or {}).items() if key != "at"}
    if old == new:
        module.exit_json(changed=False, record=record)
    new["at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = {"changed": True, "record": new}
    if module._diff:
        result["diff"] = {"before": _render(record) if record else "", "after": _render(new),
                          "before_header": params["path"], "after_header": params["path"]}
    if not module.check_mode:
        replace_file(params["path"], _render(new), ".applied-")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
