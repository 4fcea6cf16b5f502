#!/usr/bin/env python3
"""Load Gunicorn configurations with wrk: its defaults, the seed guide's, Gantry's profiles.

On this machine, in one run: a venv under the cache directory with the demo app
(examples/flask_demo) installed from its pinned requirements plus the Gunicorn that
the deploy installs (flask_app_server_requirements), then, for each round, each app
(the demo, and bench_app.py next to this file: a bare WSGI app) and each
configuration, one Gunicorn on 127.0.0.1 loaded by wrk on a no-op route (the ceiling),
/io (50 ms wait) and /cpu (about 10 ms of pure Python). Prints a markdown table of
medians over the rounds, ratios against the seed configuration, the /io route as a
share of the no-op route, and whether Gantry's profiles meet their targets.

    .venv/bin/python bench/serve/run.py [--rounds 3] [--duration 15] [--json out.json]

Gantry's profiles are read from roles/gunicorn (vars/main.yml: __gunicorn_profiles;
defaults/main.yml: timeouts, keep-alive, max_requests, the worker formula), and sized
for this host as the role sizes them. Each runs twice: with max_requests 0 and with
the role's default recycling, which costs socket errors when no proxy retries them.
"""

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEMO = REPO / "examples" / "flask_demo"
ROLE = REPO / "roles" / "gunicorn"
SKIPPED = ("__pycache__", "build", "dist", "*.egg-info", ".env", ".venv")

# route label -> path, per app; the first route of each is its no-op (the ceiling).
APPS = {
    "demo": {"wsgi": "gantry_demo.wsgi:app", "routes": {"noop": "/healthz", "io": "/io",
                                                          "cpu": "/cpu"}},
    "bare": {"wsgi": "bench_app:app", "routes": {"noop": "/", "io": "/io", "cpu": "/cpu"}},
}
IO_WAIT_S = 0.05


# ---------------------------------------------------------------- the venv


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "gantry" / "bench-serve"


def server_requirements():
    defaults = yaml.safe_load((REPO / "roles/flask_app/defaults/main.yml").read_text())
    return list(defaults["flask_app_server_requirements"])


def skipped(rel):
    return rel.suffix in (".pyc", ".pyo") or rel.name == ".env" or any(
        part in ("__pycache__", "build", "dist", ".venv") or part.endswith(".egg-info")
        for part in rel.parts)


def tree_digest(extra):
    digest = hashlib.sha256("\n".join(extra).encode() + b"\0")
    for path in sorted(DEMO.rglob("*")):
        rel = path.relative_to(DEMO)
        if path.is_file() and not skipped(rel):
            digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def ensure_venv():
    """The demo app, its pinned requirements and the deploy's Gunicorn, built once per
    content of the app tree and the pins; a half-built venv is removed and redone."""
    extra = server_requirements()
    target = cache_dir() / ("venv-" + tree_digest(extra))
    if (target / ".complete").exists():
        return target, extra
    shutil.rmtree(target, ignore_errors=True)
    print("building %s (%s)" % (target, " ".join(extra)), file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True).create(target)
    with tempfile.TemporaryDirectory(prefix="gantry-serve-src-") as tmp:
        # setuptools builds in the tree it is given: build a copy, not the checkout.
        src = Path(tmp) / "src"
        shutil.copytree(DEMO, src, ignore=shutil.ignore_patterns(*SKIPPED))
        subprocess.run(
            [str(target / "bin/python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", "--no-input",
             "-r", str(DEMO / "requirements.txt"), *extra, str(src)],
            check=True,
        )
    (target / ".complete").touch()
    return target, extra


# ---------------------------------------------------------------- configurations


def host_memory_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def gantry_configs(cores, memory_mb):
    """Gantry's profiles as roles/gunicorn writes them for this host, each with
    max_requests 0 and with the role's default recycling."""
    d = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    v = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    by_memory = memory_mb * d["gunicorn_memory_percent"] // 100 // (
        2 * d["gunicorn_worker_memory_mb"])
    common = {
        "timeout": d["gunicorn_timeout"],
        "graceful_timeout": d["gunicorn_graceful_timeout"],
        "backlog": d["gunicorn_backlog"],
        "worker_tmp_dir": "/dev/shm",
    }
    recycle = (d["gunicorn_max_requests"], d["gunicorn_max_requests_jitter"])
    configs = {}
    for name, profile in v["__gunicorn_profiles"].items():
        per_core = profile.get("workers_per_core", d["gunicorn_workers_per_core"])
        workers = max(1, min(cores * per_core + 1, by_memory))
        keepalive = d["gunicorn_keepalive"]
        keepalive = profile["keepalive"] if keepalive is None else keepalive
        settings = dict(common, workers=workers, worker_class=profile["worker_class"],
                        threads=profile["threads"], keepalive=keepalive)
        shape = "%d %s" % (workers, settings["worker_class"])
        if settings["worker_class"] == "gthread":
            shape += " × %d threads" % settings["threads"]
            # As the role's template: one connection per thread without keep-alive.
            if keepalive == 0:
                settings["worker_connections"] = settings["threads"]
        configs[name] = (
            "gantry %s (%s)" % (name, shape), dict(settings, max_requests=0),
        )
        configs[name + "+recycle"] = (
            "gantry %s, max_requests %d+%d" % (name, *recycle),
            dict(settings, max_requests=recycle[0], max_requests_jitter=recycle[1]),
        )
    return configs, common


def all_configs(cores, memory_mb, extra_specs):
    configs = {
        "defaults": ("gunicorn defaults (1 sync)", {}),
        "seed": ("seed guide (3 sync, timeout 120)",
                 {"workers": 3, "worker_class": "sync", "timeout": 120}),
    }
    gantry, common = gantry_configs(cores, memory_mb)
    # Gantry's defaults before profiles: 4 threads, keep-alive 5, worker_connections 1000.
    configs["before"] = ("gantry before profiles (%d gthread × 4 threads, keep-alive 5)"
                         % gantry["mixed"][1]["workers"],
                         dict(common, workers=gantry["mixed"][1]["workers"],
                              worker_class="gthread", threads=4, keepalive=5, max_requests=0))
    configs.update((k, gantry[k]) for k in sorted(gantry, key=lambda k: ("+" in k, k)))
    for spec in extra_specs:
        # name:workers=5,worker_class=gthread,threads=8, over Gantry's other settings
        name, _, pairs = spec.partition(":")
        settings = dict(common, max_requests=0)
        for pair in filter(None, pairs.split(",")):
            key, _, value = pair.partition("=")
            settings[key] = int(value) if value.isdigit() else value
        configs[name] = (name + " (" + pairs + ")", settings)
    return configs


# ---------------------------------------------------------------- server and load


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, venv_dir, app, settings, tmp):
        self.port = free_port()
        self.workers = settings.get("workers", 1)
        self.log = Path(tmp) / ("gunicorn-%d.log" % self.port)
        conf = Path(tmp) / ("gunicorn-%d.conf.py" % self.port)
        lines = dict(settings, bind=["127.0.0.1:%d" % self.port], errorlog=str(self.log),
                     control_socket=str(Path(tmp) / ("ctl-%d.sock" % self.port)))
        conf.write_text("".join("%s = %r\n" % kv for kv in lines.items()))
        env = dict(os.environ, SECRET_KEY="bench-only", PYTHONDONTWRITEBYTECODE="1")
        env.pop("WEB_CONCURRENCY", None)
        # cwd: an empty directory, so the demo's load_dotenv finds no stray .env.
        self.proc = subprocess.Popen(
            [str(venv_dir / "bin/gunicorn"), "-c", str(conf), "--pythonpath", str(HERE),
             APPS[app]["wsgi"]],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.url = "http://127.0.0.1:%d" % self.port
        self.wait_ready(APPS[app]["routes"]["noop"])

    def booted(self):
        try:
            return self.log.read_text().count("Booting worker")
        except FileNotFoundError:
            return 0

    def wait_ready(self, path, limit=60):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited %s:\n%s" % (
                    self.proc.returncode, self.log.read_text()[-3000:]))
            if self.booted() >= self.workers:
                try:
                    with urllib.request.urlopen(self.url + path, timeout=5) as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn not ready after %ds:\n%s" % (limit, self.log.read_text()))

    def drain(self, path, limit=120):
        """Wait until the requests wrk left queued are gone: a no-op request (which
        queues behind them) answered in under 100 ms, twice in a row."""
        deadline, quick = time.monotonic() + limit, 0
        while quick < 2 and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url + path, timeout=limit) as r:
                    r.read()
            except OSError:
                time.sleep(0.5)
                continue
            quick = quick + 1 if time.monotonic() - started < 0.1 else 0
        time.sleep(0.5)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out):
    r = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0}
    r["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    r["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        r["p" + pct] = to_ms(m.group(1)) if m and r["requests"] else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r.update(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


def wrk(url, args, duration, connections):
    cmd = ["wrk", "-t%d" % args.threads, "-c%d" % connections, "-d%ds" % duration,
           "--latency", url]
    return parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


# ---------------------------------------------------------------- other load on the host

HZ = os.sysconf("SC_CLK_TCK")


def host_busy():
    """CPU seconds the host has spent outside idle, all CPUs (user, nice, system, steal;
    interrupts are left out: loopback traffic is charged there, whoever causes it)."""
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:9]))
    return (v[0] + v[1] + v[2] + v[7]) / HZ


def proc_times(pid):
    """(ppid, own CPU seconds, reaped children's CPU seconds) of a process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / HZ, (
        int(fields[13]) + int(fields[14])) / HZ


def tree_cpu(root):
    """CPU seconds of a process, its live descendants and the children it reaped."""
    parents, times = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            t = proc_times(int(entry))
            if t:
                parents[int(entry)], times[int(entry)] = t[0], t[1:]
    tree, total = {root}, 0.0
    for pid in sorted(parents):  # descendants have higher pids, unless pids wrapped
        if parents[pid] in tree:
            tree.add(pid)
    for pid in tree & times.keys():
        own, reaped = times[pid]
        total += own + (reaped if pid == root else 0)
    return total


class Meter:
    """CPU the rest of the host used (in cores) while this bench ran something:
    everything busy minus the Gunicorn tree, this process and the wrk it ran."""

    def __init__(self, server_pid):
        self.pid = server_pid
        self.start = self.sample()

    def sample(self):
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + tree_cpu(self.pid)
        return time.monotonic(), host_busy(), mine

    def foreign(self):
        (t0, b0, m0), (t1, b1, m1) = self.start, self.sample()
        return max(0.0, (b1 - b0) - (m1 - m0)) / max(t1 - t0, 1e-3)


def wait_quiet(server, limit, threshold):
    """Wait (up to ``limit`` seconds) until the rest of the host uses less than
    ``threshold`` cores, measured over one second; returns the last measure."""
    deadline = time.monotonic() + limit
    while True:
        meter = Meter(server.proc.pid)
        time.sleep(1)
        load = meter.foreign()
        if load < threshold or time.monotonic() > deadline:
            return load
        print("  the host is busy (%.2f cores used by others), waiting" % load,
              file=sys.stderr, flush=True)
        time.sleep(5)


# ---------------------------------------------------------------- report


def errors(r):
    return r["connect"] + r["read"] + r["write"] + r["timeout"] + r["non2xx"]


def summarize(runs):
    """Medians of rate and latencies; errors and requests summed over the rounds."""
    def med(key):
        values = [r[key] for r in runs if r[key] is not None]
        return statistics.median(values) if values else None

    total = {k: sum(r[k] for r in runs) for k in
             ("requests", "connect", "read", "write", "timeout", "non2xx")}
    return dict(total, rps=med("rps"), p50=med("p50"), p99=med("p99"), errors=errors(total),
                rounds=len(runs), foreign=max(r.get("foreign", 0.0) for r in runs))


def fmt_ms(x):
    if x is None:
        return "–"
    return "%.0f ms" % x if x >= 100 else "%.1f ms" % x if x >= 1 else "%.2f ms" % x


def fmt_errors(s):
    parts = ["%s %d" % (k, s[k]) for k in ("connect", "read", "write", "timeout", "non2xx")
             if s[k]]
    return "%d" % s["errors"] + (" (" + ", ".join(parts) + ")" if parts else "")


def ratio(a, b, digits=2):
    return "%.*f×" % (digits, a / b) if a and b else "–"


def routes(args):
    """(label, route, wrk connections): the no-op ceiling, /io and /cpu at the usual
    connection count, and /io again with enough connections to find its own ceiling."""
    c = args.connections
    out = [("noop", "noop", c), ("io", "io", c), ("cpu", "cpu", c)]
    if args.io_connections:
        out.append(("io c%d" % args.io_connections, "io", args.io_connections))
    return out


def report(results, configs, args, env_line):
    labels = [label for label, _, _ in routes(args)]
    foreign = max(s["foreign"] for by_name in results.values() for by_label in by_name.values()
                  for s in by_label.values())
    lines = [env_line + "; other processes used at most %.2f cores during a kept run" % foreign,
             ""]
    for app in results:
        lines += ["**%s app** (%s)" % (app, ", ".join(
            "%s `%s`" % (k, v) for k, v in APPS[app]["routes"].items())), "",
            "| config | route | req/s | p50 | p99 | errors | req/s vs seed | p99 vs seed |",
            "|---|---|--:|--:|--:|--:|--:|--:|"]
        seed = results[app].get("seed", {})
        for name in results[app]:
            for label in labels:
                s, base = results[app][name][label], seed.get(label)
                lines.append("| %s | %s | %.0f | %s | %s | %s | %s | %s |" % (
                    configs[name][0], label, s["rps"], fmt_ms(s["p50"]), fmt_ms(s["p99"]),
                    fmt_errors(s), ratio(s["rps"], base and base["rps"]),
                    ratio(s["p99"], base and base["p99"])))
        lines.append("")

    # Little's law: n connections each waiting IO_WAIT_S cannot exceed n / IO_WAIT_S.
    io_labels = [label for label, route, _ in routes(args) if route == "io"]
    conns = {label: n for label, _, n in routes(args)}
    lines += ["**/io as a share of the ceiling**: of the same config's no-op route, and of "
              "what the connections allow (n / %.2f s: %s)" % (IO_WAIT_S, ", ".join(
                  "%s ≤ %.0f req/s" % (label, conns[label] / IO_WAIT_S) for label in io_labels)),
              "", "| config | " + " | ".join(
                  "%s %s ÷ noop | %s %s ÷ bound" % (app, label, app, label)
                  for app in results for label in io_labels) + " |",
              "|---|" + "--:|" * (2 * len(io_labels) * len(results))]
    for name in configs:
        cells = []
        for app in results:
            s = results[app][name]
            for label in io_labels:
                cells += ["%.0f %%" % (100 * s[label]["rps"] / s["noop"]["rps"]),
                          "%.0f %%" % (100 * s[label]["rps"] * IO_WAIT_S / conns[label])]
        lines.append("| %s | %s |" % (configs[name][0], " | ".join(cells)))

    lines += ["", "**Targets** against the seed config, per app: io profile ≥ 3× req/s on /io, "
              "p99 no worse, 0 errors, aim ≥ 50 % of the no-op route; cpu profile ≥ 1.0× "
              "req/s on /cpu, p99 no worse; mixed shown on both routes.", ""]
    for app in results:
        seed = results[app].get("seed")
        if not seed:
            continue
        for name in results[app]:
            profile = name.split("+")[0]
            if profile not in ("io", "mixed", "cpu"):
                continue
            s = results[app][name]
            notes, ok = [], True
            for route in ("io", "cpu"):
                if profile == "io" and route == "cpu" or profile == "cpu" and route == "io":
                    continue
                factor = 3.0 if profile == "io" else 1.0
                ok &= s[route]["rps"] >= factor * seed[route]["rps"]
                ok &= s[route]["p99"] <= seed[route]["p99"]
                notes.append("/%s %s req/s, p99 %s vs %s, %s errors" % (
                    route, ratio(s[route]["rps"], seed[route]["rps"]), fmt_ms(s[route]["p99"]),
                    fmt_ms(seed[route]["p99"]), s[route]["errors"]))
            if profile == "io":
                ok &= s["io"]["errors"] == 0
                best = max(s[label]["rps"] for label in io_labels)
                notes.append("best /io %.0f %% of no-op" % (100 * best / s["noop"]["rps"]))
            verdict = "met" if ok else "missed"
            if profile == "mixed":
                verdict = "not slower than seed" if ok else "slower than seed somewhere"
            lines.append("- %s, %s: %s — %s" % (app, configs[name][0], verdict,
                                                 "; ".join(notes)))
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def cpu_speed():
    """Milliseconds of /cpu's work in this process, median of 15: the host's CPU speed,
    which drifts on a shared VM (and is printed so the reader can see by how much)."""
    sys.path.insert(0, str(HERE))
    from bench_app import CPU_PRIME_LIMIT, count_primes

    times = []
    for _ in range(15):
        started = time.perf_counter()
        count_primes(CPU_PRIME_LIMIT)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(server, url, args, conns):
    """One wrk run on a quiet host; run again (up to --retries times) when the rest of
    the host took more than --max-foreign cores meanwhile, keeping the quietest run."""
    best = None
    for _ in range(args.retries + 1):
        wait_quiet(server, args.max_wait, args.max_foreign)
        meter = Meter(server.proc.pid)
        r = wrk(url, args, args.duration, conns)
        r["foreign"] = round(meter.foreign(), 3)
        if best is None or r["foreign"] < best["foreign"]:
            best = r
        if r["foreign"] < args.max_foreign:
            break
        print("  others used %.2f cores during the run: once more" % r["foreign"],
              file=sys.stderr, flush=True)
        server.drain(url)
    return best



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are shown")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c")
    parser.add_argument("--io-connections", type=int, default=256,
                        help="wrk -c of the second /io run (0: none)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--apps", default="demo,bare", help="comma-separated: demo, bare")
    parser.add_argument("--only", help="comma-separated config names (default: all)")
    parser.add_argument("--config", action="append", default=[], metavar="NAME:K=V,...",
                        help="an extra config, e.g. io16:workers=5,worker_class=gthread,"
                             "threads=16,max_requests=0")
    parser.add_argument("--max-foreign", type=float, default=0.15,
                        help="cores other processes may use during a run (default 0.15)")
    parser.add_argument("--max-wait", type=int, default=900,
                        help="seconds to wait for a quiet host before each run")
    parser.add_argument("--retries", type=int, default=2,
                        help="runs repeated when other processes got in the way")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    # A TERM stops the Gunicorn under test too (through the finally clauses).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk (make bench-serve installs it)")
    cores, memory_mb = os.cpu_count(), host_memory_mb()
    configs = all_configs(cores, memory_mb, args.config)
    if args.only:
        wanted = args.only.split(",")
        configs = {k: v for k, v in configs.items() if k in wanted}
    apps = args.apps.split(",")
    venv_dir, extra = ensure_venv()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    env_line = ("%d cores, %d MiB; %s, Python %s; wrk %s -t%d -c%d -d%ds --latency "
                "(timeout 2 s), on the same host; %d rounds, medians (errors: sums)" % (
                    cores, memory_mb, " ".join(extra), sys.version.split()[0],
                    (wrk_version.split() or ["?", "?"])[1], args.threads, args.connections,
                    args.duration, args.rounds))

    plan = routes(args)
    raw = {app: {name: {label: [] for label, _, _ in plan} for name in configs} for app in apps}
    speeds = []
    with tempfile.TemporaryDirectory(prefix="gantry-serve-bench-") as tmp:
        for rnd in range(args.rounds):
            # Each round starts at another config, so none is always measured last.
            names = list(configs)
            shift = rnd * len(names) // max(args.rounds, 1)
            names = names[shift:] + names[:shift]
            for app in apps:
                speeds.append(cpu_speed())
                print("round %d %s: /cpu's work takes %.1f ms in this process" % (
                    rnd + 1, app, speeds[-1]), file=sys.stderr, flush=True)
                for name in names:
                    settings = configs[name][1]
                    server = Server(venv_dir, app, settings, tmp)
                    try:
                        # Every worker imports and answers once before the clock starts.
                        wrk(server.url + APPS[app]["routes"]["noop"], args, 2, args.connections)
                        time.sleep(2)
                        for label, route, conns in plan:
                            url = server.url + APPS[app]["routes"][route]
                            r = measure(server, url, args, conns)
                            raw[app][name][label].append(r)
                            print("round %d %-4s %-14s %-8s %7.1f req/s  p99 %8s  errors %s"
                                  "  (others: %.2f cores)"
                                  % (rnd + 1, app, name, label, r["rps"], fmt_ms(r["p99"]),
                                     fmt_errors(dict(r, errors=errors(r))), r["foreign"]),
                                  file=sys.stderr, flush=True)
                            server.drain(APPS[app]["routes"]["noop"])
                    finally:
                        server.stop()
    results = {app: {name: {label: summarize(runs) for label, runs in by_label.items()}
                     for name, by_label in by_name.items()} for app, by_name in raw.items()}
    env_line += "; /cpu's work alone took %.1f–%.1f ms (medians per round and app)" % (
        min(speeds), max(speeds))
    print(report(results, configs, args, env_line))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env_line, "configs": configs, "raw": raw, "cpu_ms": speeds}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
