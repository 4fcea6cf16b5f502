"""Refuse a systemd unit file that systemd would not run as written.

The gunicorn role runs it on the host as the template's validate command, before the
unit replaces the installed one:

    python3 -c "<this file>" RENDERED UNIT_NAME EXEC_ROOT

systemd-analyze verify wants the file under its unit name, and it reports most bad
values only as warnings ("..., ignoring") with exit status 0, after which systemd runs
the unit without them. So every line it prints about this unit is a failure, except two
that only mean the deploy has not got that far yet: the other unit of the socket/service
pair not installed (first deploy), and ExecStart= under EXEC_ROOT not there yet (the
release's current symlink is made after the units).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

PARTNER = {".socket": ".service", ".service": ".socket"}


def not_yet_deployed(name, exec_root):
    stem, suffix = os.path.splitext(name)
    partner = re.escape(stem + PARTNER.get(suffix, suffix))
    unit = re.escape(name)
    return re.compile(
        # Wordings of systemd 252 (Debian 12) and 257 (Debian 13).
        rf"^{unit}: (service {partner} not loaded, .* cannot be started\."
        rf"|Failed to create {unit}/start: Unit {partner} not found\."
        rf"|Command {re.escape(exec_root.rstrip('/'))}/\S+ is not executable: "
        r"No such file or directory)$"
    )


def verify(rendered, name, exec_root):
    """The problems systemd-analyze verify finds in the unit (empty when none)."""
    excused = not_yet_deployed(name, exec_root)
    with tempfile.TemporaryDirectory(prefix="gantry-verify-") as tmp:
        shutil.copyfile(rendered, os.path.join(tmp, name))
        try:
            proc = subprocess.run(
                ["systemd-analyze", "verify", "--man=no", "--recursive-errors=no",
                 os.path.join(tmp, name)],
                capture_output=True, text=True, timeout=120, check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return [f"cannot run systemd-analyze verify: {exc}"]
        # Name the unit as it will be installed, not the scratch copy.
        output = (proc.stdout + proc.stderr).replace(tmp + os.sep, "")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    problems = [line for line in lines if name in line and not excused.match(line)]
    if proc.returncode != 0 and not problems and not any(excused.match(x) for x in lines):
        problems = [f"systemd-analyze verify exited {proc.returncode}: " + " ".join(lines)]
    return problems


def main(argv):
    if len(argv) != 4:
        print(f"usage: {argv[0]} RENDERED UNIT_NAME EXEC_ROOT", file=sys.stderr)
        return 2
    problems = verify(*argv[1:])
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
