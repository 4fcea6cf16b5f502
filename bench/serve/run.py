#!/usr/bin/env python3
"""Gunicorn's defaults, the seed guide's config and Gantry's profiles under wrk, behind nginx.

The production path, on this machine: wrk -> nginx on 127.0.0.1 (a new upstream
connection per request, HTTP/1.0, the socket listed twice with proxy_next_upstream, as
roles/nginx_edge writes it) -> Gunicorn on a unix socket -> the demo app
(examples/flask_demo). For each configuration, one Gunicorn is started and loaded on
/healthz (the no-op route: the ceiling), /io (a 50 ms wait) and /cpu (about 10 ms of pure
Python), by clients that keep their connection to nginx alive and by clients that send
`Connection: close`. Prints a markdown table: req/s, p50, p99, lost requests (wrk's socket
errors plus non-2xx answers: wrk retries nothing), and ratios against the seed config.

    .venv/bin/python bench/serve/run.py [--duration 8] [--connections 64] [--rounds 1]

Gantry's profiles are read from roles/gunicorn (vars/main.yml: __gunicorn_profiles;
defaults/main.yml: the worker formula, timeouts, max_requests) and sized for this host as
the role sizes them, recycling (max_requests + jitter) on, as deployed.
"""

import argparse
import hashlib
import json
import os
import platform
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
ROUTES = {"noop": "/healthz", "io": "/io", "cpu": "/cpu"}
CLIENTS = {"keep-alive": [], "close": ["-H", "Connection: close"]}
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
    """The demo app, its pinned requirements and the Gunicorn the deploy installs, built
    once per content of the app tree and the pins; a half-built venv is redone."""
    extra = server_requirements()
    target = cache_dir() / ("venv-" + tree_digest(extra))
    if (target / ".complete").exists():
        return target
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
    return target


# ---------------------------------------------------------------- configurations


def host_memory_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def role_workers(d, per_core, cores, memory_mb):
    """roles/gunicorn/vars/main.yml's __gunicorn_workers with gunicorn_workers 0."""
    by_cpu = cores * per_core + 1
    by_memory = memory_mb * d["gunicorn_memory_percent"] // 100 // (
        2 * d["gunicorn_worker_memory_mb"])
    return max(1, min(by_cpu, by_memory))


def gantry_configs(cores, memory_mb):
    """Gantry's profiles as roles/gunicorn writes them for this host (inputs at their
    defaults but gunicorn_profile), and Gantry's settings before profiles existed."""
    d = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    v = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    profiles = v["__gunicorn_profiles"]
    workers = role_workers(d, profiles[d["gunicorn_profile"]]["workers_per_core"], cores, memory_mb)
    common = {
        "workers": workers,
        "timeout": d["gunicorn_timeout"],
        "graceful_timeout": d["gunicorn_graceful_timeout"],
        "backlog": d["gunicorn_backlog"],
        "max_requests": d["gunicorn_max_requests"],
        "max_requests_jitter": d["gunicorn_max_requests_jitter"],
        "worker_tmp_dir": "/dev/shm",
    }
    configs = {"before": (
        "gantry before profiles (%d gthread × 4, keep-alive 5)" % workers,
        dict(common, worker_class="gthread", threads=4, keepalive=5),
    )}
    for name, p in profiles.items():
        profile_workers = role_workers(d, p["workers_per_core"], cores, memory_mb)
        settings = dict(common, workers=profile_workers, worker_class=p["worker_class"],
                        threads=p["threads"], keepalive=p["keepalive"],
                        preload_app=p["preload_app"])
        shape = "%d %s" % (profile_workers, p["worker_class"])
        if p["worker_class"] == "gthread":
            shape += " × %d" % p["threads"]
            # As the role's vars: one connection per thread when there is no keep-alive.
            if p["keepalive"] == 0:
                settings["worker_connections"] = p["threads"]
        if p["preload_app"]:
            shape += ", preloaded"
        default = " (default)" if name == d["gunicorn_profile"] else ""
        configs[name] = ("gantry %s%s: %s" % (name, default, shape), settings)
    return configs, common


def all_configs(cores, memory_mb, extra_specs):
    configs = {
        "defaults": ("gunicorn defaults (1 sync)", {}),
        "seed": ("seed guide (3 sync, timeout 120)",
                 {"workers": 3, "worker_class": "sync", "timeout": 120}),
    }
    gantry, common = gantry_configs(cores, memory_mb)
    configs.update(gantry)
    for spec in extra_specs:
        # name:threads=32,worker_connections=1000 over Gantry's common settings
        name, _, pairs = spec.partition(":")
        settings = dict(common)
        for pair in filter(None, pairs.split(",")):
            key, _, value = pair.partition("=")
            settings[key] = int(value) if value.lstrip("-").isdigit() else value
        configs[name] = ("%s (%s)" % (name, pairs), settings)
    return configs


# ---------------------------------------------------------------- nginx and gunicorn

NGINX_CONF = """\
daemon off;
worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  # As roles/nginx_edge: each socket listed twice, no upstream keep-alive.
  upstream app {{
    server unix:{tmp}/app.sock max_fails=0;
    server unix:{tmp}/app.sock max_fails=0;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /nginx-noop {{ return 200 "ok"; }}
    location / {{
      proxy_pass http://app;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_next_upstream error timeout http_502;
      proxy_next_upstream_tries 2;
      proxy_next_upstream_timeout 30s;
      proxy_read_timeout 125s;
      proxy_buffering on;
    }}
  }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, tmp):
        self.port = free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=self.port))
        self.proc = subprocess.Popen(["nginx", "-p", tmp, "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = "http://127.0.0.1:%d" % self.port
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/nginx-noop", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start: %s" % (Path(tmp) / "nginx-error.log"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Gunicorn:
    def __init__(self, venv_dir, settings, tmp, front):
        self.sock = Path(tmp) / "app.sock"
        self.sock.unlink(missing_ok=True)
        self.log = Path(tmp) / "gunicorn.log"
        self.log.write_text("")
        self.workers = settings.get("workers", 1)
        conf = Path(tmp) / "gunicorn.conf.py"
        lines = dict(settings, bind=["unix:%s" % self.sock], errorlog=str(self.log),
                     control_socket=str(Path(tmp) / "gunicorn.ctl"))
        conf.write_text("".join("%s = %r\n" % kv for kv in lines.items()))
        env = dict(os.environ, SECRET_KEY="bench-only", PYTHONDONTWRITEBYTECODE="1")
        env.pop("WEB_CONCURRENCY", None)
        # cwd: the temporary directory, so the demo's load_dotenv finds no stray .env.
        self.proc = subprocess.Popen(
            [str(venv_dir / "bin/gunicorn"), "-c", str(conf), "gantry_demo.wsgi:app"],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=self.log.open("a"))
        self.front = front
        self.wait_ready()

    def wait_ready(self, limit=60):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited %s:\n%s" % (
                    self.proc.returncode, self.log.read_text()[-3000:]))
            if self.log.read_text().count("Booting worker") >= self.workers:
                try:
                    with urllib.request.urlopen(self.front + ROUTES["noop"], timeout=5) as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn not ready after %ds:\n%s" % (limit, self.log.read_text()))

    def drain(self, limit=60):
        """Wait until what wrk left queued is gone: two no-op requests in a row (they
        queue behind it) answered in under 100 ms."""
        deadline, quick = time.monotonic() + limit, 0
        while quick < 2 and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.front + ROUTES["noop"], timeout=limit) as r:
                    r.read()
            except OSError:
                time.sleep(0.5)
                continue
            quick = quick + 1 if time.monotonic() - started < 0.1 else 0

    def recycled(self):
        return self.log.read_text().count("Autorestarting worker")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- wrk

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
    r["lost"] = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["non2xx"]
    return r


def wrk(url, args, duration, extra=()):
    # --timeout above the slowest config's queueing (1 sync worker on /io), so a slow
    # answer counts as slow, not as lost.
    cmd = ["wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % duration,
           "--timeout", "10s", "--latency", *extra, url]
    return parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


# ---------------------------------------------------------------- other load on the host

HZ = os.sysconf("SC_CLK_TCK")


def host_busy():
    """CPU seconds the host has spent outside idle and iowait, all CPUs."""
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:9]))
    return (sum(v) - v[3] - v[4]) / HZ


def tree_cpu(roots):
    """CPU seconds of processes, their live descendants and the children they reaped."""
    parents, times = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            times[int(entry)] = sum(map(int, fields[11:15])) / HZ
    tree = set(roots)
    for pid in sorted(parents):  # children have higher pids, unless pids wrapped
        if parents[pid] in tree:
            tree.add(pid)
    return sum(times[pid] for pid in tree if pid in times)


class Meter:
    """Cores the rest of the host used while this bench ran something: all that was busy
    minus nginx, Gunicorn, this process and the wrk it ran (reaped children)."""

    def __init__(self, roots):
        self.roots = roots
        self.start = self.sample()

    def sample(self):
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
        return time.monotonic(), host_busy(), mine + tree_cpu(self.roots)

    def foreign(self):
        (t0, b0, m0), (t1, b1, m1) = self.start, self.sample()
        return max(0.0, (b1 - b0) - (m1 - m0)) / max(t1 - t0, 1e-3)


def wait_quiet(roots, limit, threshold):
    """Wait (up to ``limit`` seconds) until the rest of the host uses less than
    ``threshold`` cores, measured over one second; returns the last measure."""
    deadline = time.monotonic() + limit
    while True:
        meter = Meter(roots)
        time.sleep(1)
        load = meter.foreign()
        if load < threshold or time.monotonic() > deadline:
            return load
        print("  the host is busy (%.2f cores used by others), waiting" % load,
              file=sys.stderr, flush=True)
        time.sleep(4)


def measure(roots, url, args, extra, drain):
    """One wrk run on a quiet host; again (up to --retries times) when the rest of the
    host took more than --max-foreign cores meanwhile, keeping the quietest run."""
    best = None
    for _ in range(args.retries + 1):
        drain()
        wait_quiet(roots, args.max_wait, args.max_foreign)
        meter = Meter(roots)
        r = wrk(url, args, args.duration, extra)
        r["foreign"] = round(meter.foreign(), 2)
        if best is None or r["foreign"] < best["foreign"]:
            best = r
        if r["foreign"] < args.max_foreign:
            break
        print("  others used %.2f cores during the run: once more" % r["foreign"],
              file=sys.stderr, flush=True)
    return best


# ---------------------------------------------------------------- report


def summarize(runs):
    """Medians of rate and latencies; lost requests and requests summed over rounds."""
    def med(key):
        values = [r[key] for r in runs if r[key] is not None]
        return statistics.median(values) if values else None

    total = {k: sum(r[k] for r in runs) for k in
             ("requests", "connect", "read", "write", "timeout", "non2xx", "lost", "recycled")}
    return dict(total, rps=med("rps"), p50=med("p50"), p99=med("p99"),
                foreign=max(r["foreign"] for r in runs))


def fmt_ms(x):
    if x is None:
        return "–"
    return "%.0f ms" % x if x >= 100 else "%.1f ms" % x if x >= 1 else "%.2f ms" % x


def fmt_lost(s):
    parts = ["%s %d" % (k, s[k]) for k in ("connect", "read", "write", "timeout", "non2xx")
             if s[k]]
    return "%d" % s["lost"] + (" (" + ", ".join(parts) + ")" if parts else "")


def ratio(a, b):
    return "%.2f×" % (a / b) if a and b else "–"


def report(results, configs, ceiling, args):
    foreign = max(s["foreign"] for by_client in results.values()
                  for by_route in by_client.values() for s in by_route.values())
    lines = ["Other processes on the host used at most %.2f cores during a kept run (column "
             "others: cores they used during that run; 2 cores in all)." % foreign, ""]
    for client in CLIENTS:
        lines += ["**Client %s**, %d connections" % (client, args.connections), "",
                  "| config | route | req/s | p50 | p99 | lost | recycled | req/s vs seed "
                  "| p99 vs seed | others |", "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
        seed = results.get("seed", {}).get(client, {})
        for name in results:
            for route in ROUTES:
                s, base = results[name][client][route], seed.get(route)
                lines.append("| %s | %s | %.0f | %s | %s | %s | %d | %s | %s | %.2f |" % (
                    configs[name][0], route, s["rps"], fmt_ms(s["p50"]), fmt_ms(s["p99"]),
                    fmt_lost(s), s["recycled"], ratio(s["rps"], base and base["rps"]),
                    ratio(s["p99"], base and base["p99"]), s["foreign"]))
        lines.append("")

    best = {client: max(results[n][client]["noop"]["rps"] for n in results)
            for client in CLIENTS}
    lines += ["**Ceiling**: nginx alone (`return 200`) %s; the app's no-op route through "
              "nginx, best config: %s. /io as a share of the latter, and of what %d "
              "connections allow (%d / %.2f s = %.0f req/s):" % (
                  ", ".join("%.0f req/s (%s)" % (ceiling[c], c) for c in CLIENTS),
                  ", ".join("%.0f req/s (%s)" % (best[c], c) for c in CLIENTS),
                  args.connections, args.connections, IO_WAIT_S,
                  args.connections / IO_WAIT_S), "",
              "| config | " + " | ".join("/io ÷ ceiling (%s)" % c for c in CLIENTS) + " |",
              "|---|" + "--:|" * len(CLIENTS)]
    for name in results:
        lines.append("| %s | %s |" % (configs[name][0], " | ".join(
            "%.0f %%" % (100 * results[name][c]["io"]["rps"] / best[c]) for c in CLIENTS)))

    lines += ["", "**Targets** against the seed config (io profile: /io ≥ 3× req/s, p99 no "
              "worse, 0 lost, aim ≥ 50 % of the ceiling; cpu profile: /cpu ≥ 1.0× req/s, "
              "p99 no worse; every profile 0 lost):", ""]
    if "seed" not in results:
        return "\n".join(lines)
    for name in ("io", "mixed", "cpu"):
        if name not in results:
            continue
        for client in CLIENTS:
            s, seed = results[name][client], results["seed"][client]
            notes, ok = [], True
            for route, factor in (("io", 3.0 if name == "io" else None),
                                  ("cpu", 1.0 if name == "cpu" else None)):
                rate = s[route]["rps"] / seed[route]["rps"]
                p99_ok = s[route]["p99"] <= seed[route]["p99"]
                if factor:
                    ok &= rate >= factor and p99_ok
                notes.append("/%s %.2f× req/s, p99 %s vs %s" % (
                    route, rate, fmt_ms(s[route]["p99"]), fmt_ms(seed[route]["p99"])))
            lost = sum(s[r]["lost"] for r in ROUTES)
            ok &= lost == 0
            notes.append("%d lost" % lost)
            if name == "io":
                share = s["io"]["rps"] / best[client]
                notes.append("/io %.0f %% of the ceiling" % (100 * share))
            lines.append("- %s, client %s: %s — %s" % (
                configs[name][0], client, "met" if ok else "MISSED", "; ".join(notes)))
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds; medians are shown")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--only", help="comma-separated config names (default: all)")
    parser.add_argument("--config", action="append", default=[], metavar="NAME:K=V,...",
                        help="an extra config over Gantry's common settings, e.g. "
                             "io32:worker_class=gthread,threads=32,keepalive=0")
    parser.add_argument("--max-foreign", type=float, default=0.2,
                        help="cores other processes may use during a run (default 0.2)")
    parser.add_argument("--retries", type=int, default=2,
                        help="runs repeated when other processes got in the way")
    parser.add_argument("--max-wait", type=int, default=120,
                        help="seconds to wait for a quiet host before each run")
    parser.add_argument("--venv", type=Path,
                        help="a venv holding the demo app and Gunicorn (default: built once "
                             "under ~/.cache/gantry/bench-serve), e.g. one with gevent added")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    # A TERM stops the nginx and Gunicorn under test too (through the finally clauses).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # make bench-serve installs wrk (host-packages); nginx is left to the reader, as its
    # Debian package starts a server on port 80.
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit("%s is missing: apt-get install %s" % (tool, tool))

    cores, memory_mb = os.cpu_count(), host_memory_mb()
    configs = all_configs(cores, memory_mb, args.config)
    if args.only:
        configs = {k: v for k, v in configs.items() if k in args.only.split(",")}
    venv_dir = args.venv or ensure_venv()
    versions = subprocess.run(
        [str(venv_dir / "bin/python"), "-c", "import flask, gunicorn, sys; print("
         "gunicorn.__version__, flask.__version__, sys.version.split()[0])"],
        capture_output=True, text=True, check=True).stdout.split()
    nginx_version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    header = ("%s, %s, %d cores, %d MiB; Gunicorn %s, Flask %s, Python %s, %s, wrk %s "
              "-t%d -c%d -d%ds --timeout 10s, on the same host; %d round(s), medians "
              "(lost: sums)" % (
                  time.strftime("%Y-%m-%d"), platform.platform(terse=True), cores, memory_mb,
                  *versions, nginx_version.strip().split(": ")[-1],
                  (wrk_version.split() or ["?", "?"])[1], args.threads, args.connections,
                  args.duration, args.rounds))
    print(header, file=sys.stderr, flush=True)

    raw = {name: {c: {r: [] for r in ROUTES} for c in CLIENTS} for name in configs}
    ceiling = {}
    tmp = tempfile.mkdtemp(prefix="gantry-serve-bench-")
    # nginx's workers run as www-data (when started as root) and must reach the socket.
    os.chmod(tmp, 0o755)
    nginx = Nginx(tmp)
    try:
        for client, extra_args in CLIENTS.items():
            ceiling[client] = measure([nginx.proc.pid], nginx.url + "/nginx-noop", args,
                                      extra_args, lambda: None)["rps"]
        for rnd in range(args.rounds):
            # Each round starts at another config, so none is always measured last.
            names = list(configs)
            shift = rnd * len(names) // max(args.rounds, 1)
            for name in names[shift:] + names[:shift]:
                server = Gunicorn(venv_dir, configs[name][1], tmp, nginx.url)
                try:
                    # Every worker imports and answers once before the clock starts.
                    wrk(nginx.url + ROUTES["noop"], args, 2)
                    for client, extra_args in CLIENTS.items():
                        for route, path in ROUTES.items():
                            before = server.recycled()
                            r = measure([nginx.proc.pid, server.proc.pid], nginx.url + path,
                                        args, extra_args, server.drain)
                            r["recycled"] = server.recycled() - before
                            raw[name][client][route].append(r)
                            print("round %d %-8s %-10s %-4s %7.1f req/s  p99 %8s  lost %s"
                                  "  recycled %d  others %.2f cores" % (
                                      rnd + 1, name, client, route, r["rps"], fmt_ms(r["p99"]),
                                      fmt_lost(r), r["recycled"], r["foreign"]),
                                  file=sys.stderr, flush=True)
                finally:
                    server.stop()
    finally:
        nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    results = {name: {c: {r: summarize(runs) for r, runs in by_route.items()}
                      for c, by_route in by_client.items()} for name, by_client in raw.items()}
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"header": header, "ceiling": ceiling, "configs": configs, "raw": raw}, indent=1))
    print(header + "\n")
    print(report(results, configs, ceiling, args))


if __name__ == "__main__":
    main()
