#!/usr/bin/python
"""Check that a host can take an app without taking over what is already there, and claim it."""

DOCUMENTATION = r"""
---
module: app_claim
short_description: Refuse to take over users, units, directories or ports Gantry did not create
description:
  - Gantry creates a system user and group, systemd units, C(/etc/<app>) and the app root
    for every app it deploys. If any of them already exists and was not made by Gantry for
    this app (a C(root), C(www-data), C(docker) or C(nginx) of the host, or another Gantry
    app's), deploying would rewrite an account, shadow a distribution unit or chown a
    system directory. This module finds such clashes and fails, naming each one.
  - Ownership is proven by a marker, I(registry)C(/<name>.json), written by O(claim=true)
    before anything else of the app is created. What the marker lists belongs to the app.
  - The port must not be claimed by another Gantry app on the host, nor listened on by a
    process the app does not own.
  - Read-only unless O(claim=true); then the marker is written (only when every check passed).
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
options:
  name:
    description: App name; also the name of the marker.
    type: str
    required: true
  user:
    description: System user the app runs as.
    type: str
    required: true
  group:
    description: System group of the app.
    type: str
    required: true
  units:
    description: Names of the systemd units the app installs (such as C(myapp.service)).
    type: list
    elements: str
    default: []
  paths:
    description: Directories the app creates and owns (such as C(/etc/myapp), C(/srv/myapp)).
    type: list
    elements: path
    default: []
  port:
    description: TCP port the app listens on; V(0) for none.
    type: int
    default: 0
  claim:
    description: Write the marker once every check passed.
    type: bool
    default: false
  adopt:
    description:
      - Claim what already exists without asking who made it, for a host deployed before
        markers existed. Other Gantry apps' claims are still refused. Implies O(claim=true).
        Use it only for names you know are the app's.
    type: bool
    default: false
  registry:
    description: Directory of the markers, one JSON file per app.
    type: path
    default: /var/lib/gantry/apps
notes:
  - Supports check mode (the marker is not written) and diff mode (the marker's content).
  - Users and groups are looked up through NSS, so accounts from LDAP or SSSD count too.
"""

EXAMPLES = r"""
- name: Refuse names and ports that belong to something else on the host
  app_claim:
    name: shop
    user: shop
    group: shop
    units: [shop.service, shop.socket]
    paths: [/etc/shop, /srv/shop]
    port: 8000

- name: Claim them before creating the user
  app_claim:
    name: shop
    user: shop
    group: shop
    units: [shop.service, shop.socket]
    paths: [/etc/shop, /srv/shop]
    port: 8000
    claim: true
"""

RETURN = r"""
conflicts:
  description: What the app would take over; empty when the host can take it.
  returned: always
  type: list
  elements: str
  sample: ["user www-data exists and was not created by Gantry for app www-data"]
marker:
  description: Path of the app's marker.
  returned: always
  type: str
  sample: /var/lib/gantry/apps/shop.json
"""

import glob
import grp
import json
import os
import pwd
import tempfile

from ansible.module_utils.basic import AnsibleModule

# Every place systemd loads units from, generated ones (SysV scripts) included.
UNIT_DIRS = (
    "/etc/systemd/system", "/run/systemd/system", "/run/systemd/transient",
    "/run/systemd/generator", "/run/systemd/generator.early", "/run/systemd/generator.late",
    "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system",
)
LISTEN_STATE = "0A"


def read_markers(registry):
    markers = {}
    for path in sorted(glob.glob(os.path.join(registry, "*.json"))):
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("name"):
            markers[data["name"]] = data
    return markers


def account_exists(lookup, name):
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def unit_exists(unit):
    return any(os.path.lexists(os.path.join(d, unit)) for d in UNIT_DIRS)


def listening_inodes(port):
    """Inodes of TCP sockets listening on port, from /proc (no ss or netstat needed)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16) if len(fields) > 9 else None
            if local_port == port and fields[3] == LISTEN_STATE:
                inodes.add(fields[9])
    return inodes


def socket_owners(inodes):
    owners = set()
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        try:
            links = {os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)}
        except OSError:
            continue
        if links & wanted:
            try:
                comm = os.path.join(os.path.dirname(fd_dir), "comm")
                with open(comm, encoding="utf-8") as handle:
                    owners.add(handle.read().strip())
            except OSError:
                owners.add("?")
    return sorted(owners)


def find_conflicts(params, markers):
    name = params["name"]
    mine = markers.get(name, {})
    others = {k: v for k, v in markers.items() if k != name}
    conflicts = []

    def claimed_by_other(kind, value):
        for other, data in sorted(others.items()):
            owned = data.get(kind)
            if value == owned or (isinstance(owned, list) and value in owned):
                return other
        return None

    checks = [
        ("user", params["user"], lambda v: account_exists(pwd.getpwnam, v)),
        ("group", params["group"], lambda v: account_exists(grp.getgrnam, v)),
    ]
    checks += [("units", unit, unit_exists) for unit in params["units"]]
    checks += [("paths", path, os.path.lexists) for path in params["paths"]]
    for kind, value, exists in checks:
        label = {"units": "unit", "paths": "path"}.get(kind, kind)
        other = claimed_by_other(kind, value)
        if other:
            conflicts.append(f"{label} {value} belongs to the Gantry app {other}")
            continue
        owned = mine.get(kind)
        if value == owned or (isinstance(owned, list) and value in owned):
            continue
        if not params["adopt"] and exists(value):
            conflicts.append(
                f"{label} {value} exists on this host and was not created by Gantry for app {name}")

    port = params["port"]
    if port:
        other = claimed_by_other("port", port)
        if other:
            conflicts.append(f"port {port} is used by the Gantry app {other}")
        elif mine.get("port") != port and not params["adopt"]:
            inodes = listening_inodes(port)
            if inodes:
                owners = ", ".join(socket_owners(inodes)) or "another process"
                conflicts.append(f"port {port} is already listened on by {owners}")
    return conflicts


def write_marker(path, content):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".marker-")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            user=dict(type="str", required=True),
            group=dict(type="str", required=True),
            units=dict(type="list", elements="str", default=[]),
            paths=dict(type="list", elements="path", default=[]),
            port=dict(type="int", default=0),
            claim=dict(type="bool", default=False),
            adopt=dict(type="bool", default=False),
            registry=dict(type="path", default="/var/lib/gantry/apps"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    marker = os.path.join(params["registry"], params["name"] + ".json")
    markers = read_markers(params["registry"])
    conflicts = find_conflicts(params, markers)
    if conflicts:
        module.fail_json(
            msg=f"App {params['name']} cannot be deployed on this host: " + "; ".join(conflicts)
            + ". Nothing was changed. Choose another gantry_app.name.",
            conflicts=conflicts, marker=marker)

    result = dict(changed=False, conflicts=[], marker=marker)
    if params["claim"] or params["adopt"]:
        content = json.dumps({
            "name": params["name"], "user": params["user"], "group": params["group"],
            "units": params["units"], "paths": params["paths"], "port": params["port"],
        }, indent=2, sort_keys=True) + "\n"
        try:
            with open(marker, encoding="utf-8") as handle:
                current = handle.read()
        except FileNotFoundError:
            current = ""
        result["changed"] = current != content
        if module._diff:
            result["diff"] = dict(
                before_header=marker, after_header=marker, before=current, after=content)
        if result["changed"] and not module.check_mode:
            try:
                os.makedirs(params["registry"], mode=0o755, exist_ok=True)
                write_marker(marker, content)
            except OSError as exc:
                module.fail_json(
                    msg=f"cannot write the marker {marker}: {exc}", conflicts=[], marker=marker)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
