#!/usr/bin/python
"""Write an environment file that systemd and python-dotenv read identically."""

DOCUMENTATION = r"""
---
module: env_file
short_description: Write an env file read the same by systemd EnvironmentFile= and python-dotenv
description:
  - Writes C(KEY=VALUE) lines in the subset of syntax where systemd's C(EnvironmentFile=)
    and python-dotenv agree, so the app sees the same values under systemd and in a
    local shell.
  - Values are single-quoted (literal in both readers). A value holding a single quote or
    a backslash is double-quoted with C(\\) and C(") escaped, which both readers undo the
    same way. Values both readers would read differently (a newline, a control
    character, or C(${), which python-dotenv expands even in single quotes) are
    refused with an error naming the key, never its value.
  - Values are never logged; the diff names the keys that change, not their values.
  - The file is replaced atomically with its final owner, group and mode.
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
options:
  path:
    description: Path of the env file.
    type: path
    required: true
  env:
    description: Variables to write. Keys must be valid shell identifiers.
    type: dict
    required: true
  owner:
    description: Owner of the file.
    type: str
    default: root
  group:
    description: Group of the file.
    type: str
    default: root
  mode:
    description:
      - Mode of the file, read as M(ansible.builtin.file) reads it. A string is octal
        digits (C("0640"), C("640") or C("0o640")) or symbolic (C(u=rw,g=r,o=), applied
        to the current file's mode, or to C(0666) less the umask for a new file). A number
        is taken as the mode itself, which is what YAML makes of an unquoted C(0640).
      - The file holds secrets, so a mode that grants others anything (C(o+r), C(o+w),
        C(o+x)) or sets setuid, setgid or the sticky bit is refused. Quote the mode, since an
        unquoted C(640) without the leading zero is the decimal number 640, octal
        C(01200), and is refused.
    type: raw
    default: "0640"
  backup:
    description:
      - Keep the file being replaced as I(path)C(.previous) (same owner and mode; an
        older one there is overwritten), so that a deploy whose new settings fail can
        put the old ones back.
    type: bool
    default: false
  keep_keys_matching:
    description:
      - A regular expression (matched at the start of each key). Keys whose names match
        keep the line the file already has, whatever O(env) says, and a matching key the
        file lacks is not written.
      - For comparing a file with the inventory when another step computes some of its
        keys (such as the C(FLASKS3_*) settings of an asset upload), in check mode.
    type: str
notes:
  - Supports check mode and diff mode.
  - Keys are written sorted, so reordering the input changes nothing.
"""

EXAMPLES = r"""
- name: Write the app's environment
  env_file:
    path: /etc/myapp/myapp.env
    env:
      FLASK_DEBUG: "0"
      SECRET_KEY: "{{ vault_secret_key }}"
    group: myapp
    mode: "0640"
  no_log: true
"""

RETURN = r"""
changed_keys:
  description: Keys added, removed or given a new value (names only).
  returned: always
  type: list
  elements: str
  sample: [SECRET_KEY]
backup_file:
  description:
    - The kept copy of the replaced file, when I(backup) made one.
    - Ansible masks every value of I(env) wherever it appears in the output, so with
      short values this path can come back masked; it is always I(path)C(.previous).
  returned: changed and backup
  type: str
  sample: /etc/myapp/myapp.env.previous
"""

import grp
import os
import pwd
import re
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def quote(key, value):
    if CONTROL_RE.search(value):
        raise ValueError(f"value of {key} holds a newline or control character")
    if "${" in value:
        # python-dotenv expands ${NAME} even inside single quotes; systemd never does.
        raise ValueError(f"value of {key} holds '${{', which python-dotenv would expand "
                         "and systemd would not")
    if "'" not in value and "\\" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render(env, kept_lines=None):
    """The file's text; kept_lines (key to the text after "=") are written as they are."""
    lines = {}
    for key, value in env.items():
        if not KEY_RE.match(key):
            raise ValueError(f"{key!r} is not a valid environment variable name")
        if isinstance(value, bool):
            value = "1" if value else "0"
        lines[key] = quote(key, str(value))
    lines.update(kept_lines or {})
    return "\n".join(f"{key}={lines[key]}" for key in sorted(lines)) + "\n"


# The file holds secrets: others get nothing, and setuid, setgid or sticky on a data file
# only ever come from a mistyped mode (an unquoted 640 is decimal, octal 1200).
REFUSED_BITS = stat.S_IRWXO | stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


def parse_mode(value, current_mode=None):
    """The mode as ansible.builtin.file reads it (AnsibleModule.set_mode_if_different),
    refused when it would open the secrets to others. current_mode is the existing file's
    mode, which a symbolic mode is applied to; None for a new file."""
    if isinstance(value, bool):
        # YAML reads yes/no/true/false as booleans, and bool is a subclass of int.
        raise ValueError(f"mode {value!r} is not a file mode")
    if isinstance(value, int):
        # An unquoted 0640 in YAML 1.1 is already the octal number 0o640.
        mode = value
    else:
        text = str(value)
        try:
            mode = int(text, 8)
        except ValueError:
            if current_mode is None:
                umask = os.umask(0)
                os.umask(umask)
                current_mode = 0o666 & ~umask
            base = os.stat_result((stat.S_IFREG | current_mode,) + (0,) * 9)
            try:
                mode = AnsibleModule._symbolic_mode_to_octal(base, text)
            except Exception as exc:
                raise ValueError(f"mode {value!r} is neither octal nor symbolic ({exc})") from exc
    if mode < 0 or mode != stat.S_IMODE(mode):
        raise ValueError(f"mode {value!r} holds more than permission bits")
    if mode & REFUSED_BITS:
        raise ValueError(
            f"mode {value!r} is {mode:04o}, which grants others access or sets the setuid, "
            "setgid or sticky bit; the file holds secrets, use \"0640\" or \"0600\"")
    return mode


def parse_keys(text):
    keys = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, _sep, value = line.partition("=")
            keys[key] = value
    return keys


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            env=dict(type="dict", required=True, no_log=True),
            owner=dict(type="str", default="root"),
            group=dict(type="str", default="root"),
            mode=dict(type="raw", default="0640"),
            backup=dict(type="bool", default=False),
            keep_keys_matching=dict(type="str", no_log=False),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        with open(path, encoding="utf-8") as handle:
            current = handle.read()
    except FileNotFoundError:
        current = None
    env, kept_lines = module.params["env"], None
    if module.params["keep_keys_matching"] is not None:
        try:
            keep = re.compile(module.params["keep_keys_matching"])
        except re.error as exc:
            module.fail_json(msg=f"keep_keys_matching is not a regular expression: {exc}")
        env = {key: value for key, value in env.items() if not keep.match(key)}
        kept_lines = {key: value for key, value in parse_keys(current or "").items()
                      if keep.match(key)}
    try:
        content = render(env, kept_lines)
    except ValueError as exc:
        module.fail_json(msg=f"cannot write {path}: {exc}")
    try:
        current_mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        current_mode = None
    try:
        mode = parse_mode(module.params["mode"], current_mode)
    except ValueError as exc:
        # Before any check-mode shortcut: a refused mode fails in check mode too.
        module.fail_json(msg=f"cannot write {path}: {exc}")

    old, new = parse_keys(current or ""), parse_keys(content)
    changed_keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    changed = current != content
    result = dict(changed=changed, changed_keys=changed_keys)
    if module._diff:
        result["diff"] = dict(
            before_header=path, after_header=path,
            before="".join(f"{k}=<hidden>\n" for k in sorted(old)) if current is not None else "",
            after="".join(
                f"{k}=<{'changed' if k in changed_keys else 'hidden'}>\n" for k in sorted(new)),
        )

    try:
        uid = pwd.getpwnam(module.params["owner"]).pw_uid
        gid = grp.getgrnam(module.params["group"]).gr_gid
    except KeyError as exc:
        if module.check_mode:
            # The user or group is created by an earlier task that check mode only predicted.
            result["changed"] = True
            module.exit_json(**result)
        module.fail_json(msg=f"cannot write {path}: unknown owner or group ({exc})")

    if current is not None and not changed:
        st = os.stat(path)
        changed = (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (uid, gid, mode)
        result["changed"] = changed

    if changed and not module.check_mode:
        if module.params["backup"] and current is not None:
            # A second name for the old inode: no copy of the secrets is ever written,
            # and the replace below leaves the old content there alone.
            backup = path + ".previous"
            try:
                if os.path.lexists(backup):
                    os.unlink(backup)
                os.link(path, backup)
            except OSError as exc:
                module.fail_json(msg=f"cannot keep the old {path} as {backup}: {exc}")
            result["backup_file"] = backup
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".env-")
        try:
            # Final owner and mode before the first byte: secrets never sit readable.
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.replace(tmp, path)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            module.fail_json(msg=f"cannot write {path}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
