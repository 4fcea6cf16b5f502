#!/usr/bin/env python3
"""Deploy benchmark: first converge, no-change re-run and code-only redeploy of site.yml
for 2 and 4 local hosts, side by side in one run (`make bench-deploy`).

Each size gets its own local hosts (Debian containers with systemd, as `make demo` makes
them, Debian 12 and 13 alternating) under a temporary inventory that uses the local
inventory's group_vars, and `gantry_serial` set the same for every size (default 100%:
one batch). The sample app's build is taken from the controller's cache (make demo made it);
each code-only redeploy builds its release. Per run: wall time, the
tasks the recap counts per host (ok + changed + skipped + failed) and what changed.
Targets (issue "Release lifecycle", item 8): no-change ≤ 25 % of the first converge, and
4 hosts ≤ 1.3× the time of 2 hosts. Needs Docker and the images (`make images`).
"""

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ["gantry/debian:bookworm", "gantry/debian:trixie"]
FIRST_PORT = 18281
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                   r"\s+skipped=(\d+)", re.M)


def busy_cpu_seconds():
    """CPU seconds the whole machine spent busy since boot (/proc/stat: all but idle, iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def controller_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def playbook(inventory, play, *extra, log, env_extra=None):
    """Run ansible-playbook from the project root; return (seconds, recap per host, CPU
    seconds of ansible-playbook and of everything else on the machine: hosts, Docker)."""
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", **(env_extra or {}))
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    busy, controller = busy_cpu_seconds(), controller_cpu_seconds()
    started = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), play,
         *extra], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    controller = controller_cpu_seconds() - controller
    cpu = {"controller": controller, "rest": busy_cpu_seconds() - busy - controller}
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit("%s failed (rc %d); its output: %s" % (play, proc.returncode, log))
    recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "failed": int(m[4]),
                    "skipped": int(m[5])} for m in RECAP.findall(proc.stdout)}
    return seconds, recap, cpu


def inventory(tmp, size, connection="community.docker.docker"):
    """A local inventory of size hosts under tmp, sharing the local group_vars."""
    inv = tmp / ("hosts-%d-%s" % (size, connection.rsplit(".", 1)[-1]))
    inv.mkdir()
    (inv / "group_vars").symlink_to(ROOT / "inventories/local/group_vars")
    hosts = "\n".join(
        "    gantry-bench-%d-%d:\n      gantry_local_port: %d\n      gantry_local_image: %s"
        % (size, i, FIRST_PORT + 10 * size + i, IMAGES[i % 2]) for i in range(size))
    (inv / "hosts.yml").write_text(
        "app_servers:\n  hosts:\n%s\n  vars:\n    ansible_connection: %s\n"
        "    ansible_user: root\n    gantry_local_network: gantry-bench-%d\n"
        % (hosts, connection, size))
    return inv


def mitogen_env():
    """Ansible settings that run site.yml with Mitogen's strategy and connections."""
    try:
        import ansible_mitogen
    except ImportError:
        sys.exit("--mitogen needs Mitogen in this venv: %s -m pip install mitogen" % sys.executable)
    plugins = Path(ansible_mitogen.__file__).parent / "plugins"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins / "strategy"),
            "ANSIBLE_STRATEGY": "mitogen_linear"}


def code_change(tmp, size):
    """The sample app with one view changed: a new release (built, as a code change is),
    the same dependencies. One per size, so that no size finds the other's build cached."""
    app = tmp / ("app-code-change-%d" % size)
    shutil.copytree(ROOT / "examples/flask_demo", app, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    views = app / "gantry_demo/views.py"
    views.write_text(views.read_text() + "\n# bench-deploy: a code-only change, %d hosts\n" % size)
    return app


def task_count(recap):
    counts = [sum(v[k] for k in ("ok", "changed", "failed", "skipped")) for v in recap.values()]
    return max(counts) if counts else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,4", help="host counts, comma-separated")
    parser.add_argument("--serial", default="100%", help="gantry_serial for every size")
    parser.add_argument("--keep", action="store_true", help="leave the hosts running")
    parser.add_argument("--mitogen", action="store_true",
                        help="run site.yml with Mitogen (strategy mitogen_linear, connection "
                             "mitogen_docker); needs `pip install mitogen` in the venv")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    site_env = mitogen_env() if args.mitogen else {}

    tmp = Path(tempfile.mkdtemp(prefix="gantry-deploy-bench-"))
    # The hosts' share of a deploy: the asset upload is bench-s3's, and the local S3 and
    # Cloudflare stand-in the local inventory turns on are the demo's, not started here.
    site_args = ["-e", "gantry_serial=%s" % args.serial,
              "-e", "s3_static_enabled=false", "-e", "cloudflare_cdn_enabled=false"]
    rows = []
    for size in sizes:
        inv = inventory(tmp, size)
        site_inv = inventory(tmp, size, "mitogen_docker") if args.mitogen else inv
        logs = tmp / ("logs-%d" % size)
        logs.mkdir()
        try:
            playbook(inv, "playbooks/local_hosts.yml", log=logs / "hosts.log")
            runs = {}
            changed_app = "gantry_app_source=%s" % code_change(tmp, size)
            for name, extra in (("first converge", []), ("no-change", []),
                                ("code-only", ["-e", changed_app])):
                seconds, recap, cpu = playbook(site_inv, "site.yml", *site_args, *extra,
                                               log=logs / (name.replace(" ", "-") + ".log"),
                                               env_extra=site_env)
                runs[name] = (seconds, recap, cpu)
                print("%d hosts, %-14s %6.1f s  %3d tasks per host  changed %s  CPU s: "
                      "controller %.0f, hosts and Docker %.0f" % (
                          size, name, seconds, task_count(recap),
                          sorted({v["changed"] for v in recap.values()}),
                          cpu["controller"], cpu["rest"]),
                      file=sys.stderr, flush=True)
            if any(v["changed"] for v in runs["no-change"][1].values()):
                sys.exit("the no-change run changed something: %s" % (logs / "no-change.log"))
            rows.append((size, runs))
        finally:
            if not args.keep:
                playbook(inv, "playbooks/local_hosts_down.yml", log=logs / "down.log")
    print(report(rows, args, tmp))


def report(rows, args, tmp):
    lines = ["%s, %d cores; gantry_serial %s; %s; logs under %s" % (
        time.strftime("%Y-%m-%d"), os.cpu_count(), args.serial,
        "Mitogen (mitogen_linear, mitogen_docker)" if args.mitogen else "the docker connection",
        tmp), "",
        "| hosts | first converge | no-change | no-change ÷ first | code-only | tasks per host "
        "(first / no-change) |", "|--:|--:|--:|--:|--:|--:|"]
    for size, runs in rows:
        first, same, code = (runs[k][0] for k in ("first converge", "no-change", "code-only"))
        lines.append("| %d | %.0f s | %.0f s | %.0f %% | %.0f s | %d / %d |" % (
            size, first, same, 100 * same / first, code,
            task_count(runs["first converge"][1]), task_count(runs["no-change"][1])))
    # Whether the machine, not Ansible, sets the pace: the hosts share its cores.
    lines += ["", "CPU seconds per run, ansible-playbook + everything else (hosts, Docker), "
              "and the machine's cores busy on average:", "",
              "| hosts | run | controller | hosts and Docker | cores busy of %d |" % os.cpu_count(),
              "|--:|--|--:|--:|--:|"]
    for size, runs in rows:
        for name, (seconds, _, cpu) in runs.items():
            lines.append("| %d | %s | %.0f s | %.0f s | %.2f |" % (
                size, name, cpu["controller"], cpu["rest"],
                (cpu["controller"] + cpu["rest"]) / seconds))
    lines += ["", "First converge: the sample app's build was cached on the controller; "
              "code-only: a new build each time."]
    by_size = {size: runs for size, runs in rows}
    if 2 in by_size and 4 in by_size:
        ratios = ", ".join("%s %.2f×" % (k, by_size[4][k][0] / by_size[2][k][0])
                           for k in ("first converge", "no-change", "code-only"))
        lines += ["", "4 hosts ÷ 2 hosts: " + ratios + " (target ≤ 1.3×)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
