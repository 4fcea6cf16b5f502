"""Sample the resident memory of Gunicorn's workers until told to stop.

    python3 rss_sampler.py --out FILE --stop FILE --arbiter PID [--arbiter PID ...]

Every --interval seconds, the workers are the arbiters' children, looked up again each
time so a worker that recycles mid-run is sampled too; the arbiters themselves are not
(they never see a request body). After each round FILE is replaced with
{"samples": N, "workers": {pid: {"first_kib", "max_kib", "last_kib", "samples"}}}, so
what it holds is complete whenever it is read. Runs until FILE --stop exists or
--max-seconds pass, whichever is first, then prints FILE's content. The standard
library only: it runs on the hosts, with their python3.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path


def children(parents: set[int]) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # exited since the scan
            continue
        # The command name, in parentheses, may itself hold spaces and parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid in parents:
            found.append(int(entry.name))
    return sorted(found)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arbiter", type=int, action="append", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stop", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args(argv)

    workers: dict[str, dict[str, int]] = {}
    rounds = 0
    deadline = time.monotonic() + args.max_seconds
    while True:
        for pid in children(set(args.arbiter)):
            kib = rss_kib(pid)
            if kib is None:
                continue
            seen = workers.setdefault(str(pid), {"first_kib": kib, "max_kib": kib, "samples": 0})
            seen["max_kib"] = max(seen["max_kib"], kib)
            seen["last_kib"] = kib
            seen["samples"] += 1
        rounds += 1
        partial = args.out.with_name(args.out.name + ".partial")
        partial.write_text(json.dumps({"samples": rounds, "workers": workers}))
        partial.replace(args.out)
        if args.stop.exists() or time.monotonic() > deadline:
            break
        time.sleep(args.interval)
    sys.stdout.write(args.out.read_text() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
