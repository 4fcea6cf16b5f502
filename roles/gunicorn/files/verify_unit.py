"""Refuse a systemd unit file that systemd would not run as written.

The gunicorn and app_processes roles run it on the host as the template's validate
command, before the unit replaces the installed one:

    python3 -c "<this file>" RENDERED UNIT_NAME EXEC_ROOT

systemd-analyze verify wants the file under its unit name, and it reports most bad
values only as warnings ("..., ignoring") with exit status 0, after which systemd runs
the unit without them. So every line it prints about this unit is a failure, except two
that only mean the deploy has not got that far yet: the other unit of the socket/service
pair (or the service a timer starts) not installed (first deploy), and ExecStart= under
EXEC_ROOT not there yet (a release instance's directory is made when the instance
starts). A template (name@.service) is verified as systemd-analyze instantiates it
(name@i.service on systemd 252, name@test_instance.service on 257), and the lines about
that instance count too.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

PARTNER = {".socket": ".service", ".service": ".socket", ".timer": ".service"}


def unit_pattern(name, suffix=None):
    """A regex for the unit, or for each instance systemd-analyze makes of a template."""
    stem, own_suffix = os.path.splitext(name)
    suffix = suffix or own_suffix
    if stem.endswith("@"):
        return re.escape(stem) + r"[\w.-]*" + re.escape(suffix)
    return re.escape(stem + suffix)


def not_yet_deployed(name, exec_root):
    suffix = os.path.splitext(name)[1]
    partner = unit_pattern(name, PARTNER.get(suffix, suffix))
    unit = unit_pattern(name)
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
    about_unit = re.compile(re.escape(name) + "|" + unit_pattern(name))
    problems = [line for line in lines if about_unit.search(line) and not excused.match(line)]
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
