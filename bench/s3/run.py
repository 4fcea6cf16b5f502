#!/usr/bin/env python3
"""Time s3_static_sync against community.aws.s3_sync, `aws s3 sync` and s5cmd.

One moto S3 server on 127.0.0.1, one generated tree, one bucket per tool, five
scenarios run in order: first upload, no-change resync, mtime-only change (a fresh
checkout), 1 % of the files edited, and a code-only deploy (the tree unchanged, a new
release id). s3_static_sync runs twice per scenario: in place (Flask-S3's layout) and
versioned (the s3_static role's default: a new asset version when the tree changes,
its unchanged files copied inside the bucket). Each of its runs is a new release, as
in a deploy. Prints times, objects written, and ratios.

    .venv/bin/python bench/s3/run.py [--files 2000] [--json results.json]

Times are wall clock of the whole command (ansible-playbook for the two modules, so
they include Ansible's start-up) and, for the modules, the task's own duration as
Ansible's json callback reports it. "Written" counts the objects whose LastModified
falls in the run, read back from the bucket, so it is the same measure for every tool.
"""

import argparse
import asyncio
import datetime
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
TOOLS = ("s3_static_sync", "versioned", "s3_sync", "aws", "s5cmd")
OTHERS = ("s3_sync", "aws", "s5cmd")
SCENARIOS = (
    "first upload",
    "no-change resync",
    "mtime-only change",
    "1% changed",
    "code-only deploy",
)
MANIFEST = ".gantry-static-manifest.json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ansible_config(tmp):
    """Gantry's collection from this checkout and nothing else of its ansible.cfg: its
    vault ids would start the vault client three times per run (0.15 s each where python3
    is a pyenv shim), which has nothing to do with S3."""
    path = os.path.join(tmp, "ansible.cfg")
    with open(path, "w") as f:
        f.write(
            "[defaults]\ncollections_path = %s\nretry_files_enabled = false\n"
            "[connection]\npipelining = true\n" % os.path.join(REPO, ".collections")
        )
    return path


def base_env(tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1",
        ANSIBLE_CONFIG=ansible_config(tmp),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_LOCAL_TEMP=os.path.join(tmp, "ansible-tmp"),
        ANSIBLE_DEPRECATION_WARNINGS="false",
    )
    return env


def make_tree(root, count, seed):
    """A static tree shaped like a real one: css/js text, images and fonts that do
    not compress, a vendor subtree, some content-hashed names."""
    rng = random.Random(seed)
    kinds = [
        ("css", "css", 0.15, True),
        ("js", "js", 0.25, True),
        ("img", "png", 0.3, False),
        ("img/icons", "svg", 0.15, True),
        ("fonts", "woff2", 0.05, False),
        ("vendor/lib", "js", 0.1, True),
    ]
    words = b"body margin padding color function return const let var div span "
    paths = []
    for i in range(count):
        r = rng.random()
        acc = 0.0
        for kind in kinds:
            acc += kind[2]
            if r <= acc:
                break
        folder, ext, _, text = kind
        sub = "%s/d%02d" % (folder, i % 17)
        hashed = ".%08x" % rng.getrandbits(32) if i % 10 == 0 else ""
        rel = "%s/f%05d%s.%s" % (sub, i, hashed, ext)
        size = int(min(262144, max(120, rng.lognormvariate(8.3, 1.1))))
        if text:
            data = (words * (size // len(words) + 1))[:size]
            data = data[:-8] + b"%08d" % i
        else:
            data = rng.randbytes(size)
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths


class LatencyProxy:
    """TCP forwarder on 127.0.0.1 that holds each request for ``rtt`` seconds before
    passing it on, to stand for the network between a deploy host and S3 (moto on
    loopback answers in microseconds, which hides what one request per file costs)."""

    def __init__(self, upstream_port, rtt):
        self.upstream_port = upstream_port
        self.rtt = rtt
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait()

    def _serve(self, ready):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        # A request starts when the client sends after a response (or first of all).
        fresh = [True]

        async def client_to_server():
            while data := await reader.read(65536):
                if fresh[0]:
                    fresh[0] = False
                    await asyncio.sleep(self.rtt)
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def server_to_client():
            while data := await up_reader.read(65536):
                fresh[0] = True
                writer.write(data)
                await writer.drain()
            writer.close()

        try:
            await asyncio.gather(client_to_server(), server_to_client())
        except ConnectionError:
            writer.close()
            up_writer.close()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def wait_for_port(port, proc):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None:
                sys.exit("moto server exited with %s" % proc.returncode)
            time.sleep(0.05)
    sys.exit("moto server did not start")


class Bench:
    def __init__(self, tmp, tree, endpoint, direct, env, workers):
        self.tmp = tmp
        self.tree = tree
        self.round = 0
        self.releases = 0
        self.endpoint = endpoint
        self.env = env
        self.workers = workers
        import boto3

        self.s3 = boto3.client(
            "s3",
            endpoint_url=direct,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        )

    def bucket(self, tool):
        return "bench-%s-%d" % (tool.replace("_", "-"), self.round)

    def release(self):
        self.releases += 1
        return "r%d-%d" % (self.round, self.releases)

    def playbook(self, name, task):
        path = os.path.join(self.tmp, name + ".yml")
        play = [{"name": name, "hosts": "localhost", "gather_facts": False, "tasks": [task]}]
        with open(path, "w") as f:
            json.dump(play, f)
        return path

    def run_playbook(self, path):
        cmd = [
            os.path.join(BIN, "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=%s" % sys.executable,
            path,
        ]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=self.env, capture_output=True, text=True)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            sys.exit(
                "%s failed (rc %s):\n%s\n%s"
                % (path, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
            )
        task = json.loads(proc.stdout)["plays"][0]["tasks"][0]
        duration = task["task"]["duration"]
        t0 = datetime.datetime.fromisoformat(duration["start"].replace("Z", "+00:00"))
        t1 = datetime.datetime.fromisoformat(duration["end"].replace("Z", "+00:00"))
        return wall, (t1 - t0).total_seconds(), task["hosts"]["localhost"]

    def run_tool(self, tool):
        bucket = self.bucket(tool)
        if tool in ("s3_static_sync", "versioned"):
            task = {
                "name": "ours",
                "gantry.deploy.s3_static_sync": {
                    "bucket": bucket,
                    "endpoint_url": self.endpoint,
                    "region": "us-east-1",
                    "folders": [{"path": self.tree, "url_path": "/static"}],
                    "release": self.release(),
                    "versioned": tool == "versioned",
                },
            }
            if self.workers:
                task["gantry.deploy.s3_static_sync"]["workers"] = self.workers
            wall, task_s, result = self.run_playbook(self.playbook("ours", task))
            return wall, task_s, result.get("seconds")
        if tool == "s3_sync":
            task = {
                "name": "theirs",
                "community.aws.s3_sync": {
                    "bucket": bucket,
                    "endpoint_url": self.endpoint,
                    "region": "us-east-1",
                    "file_root": self.tree,
                    "key_prefix": "static",
                    "mode": "push",
                },
            }
            wall, task_s, _ = self.run_playbook(self.playbook("theirs", task))
            return wall, task_s, None
        if tool == "aws":
            cmd = [
                os.path.join(BIN, "aws"),
                "--endpoint-url",
                self.endpoint,
                "s3",
                "sync",
                "--only-show-errors",
                self.tree,
                "s3://%s/static" % bucket,
            ]
        else:
            cmd = [
                os.path.join(BIN, "s5cmd"),
                "--endpoint-url",
                self.endpoint,
                "sync",
                self.tree + "/",
                "s3://%s/static/" % bucket,
            ]
        start = time.monotonic()
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            sys.exit("%s failed:\n%s\n%s" % (tool, proc.stdout[-3000:], proc.stderr[-3000:]))
        return wall, None, None

    def ansible_floor(self):
        """Wall and task time of a playbook whose one task does nothing: no Ansible
        module can take less, so s3_sync's time over this is the highest ratio any
        module can reach against it here."""
        task = {"name": "floor", "ansible.builtin.ping": {}}
        wall, task_s, _ = self.run_playbook(self.playbook("floor", task))
        return {"wall": wall, "task": task_s}

    def written_since(self, tool, since):
        count = 0
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket(tool))
        for page in pages:
            for obj in page.get("Contents", ()):
                if obj["Key"].endswith(MANIFEST):
                    continue
                if obj["LastModified"].timestamp() >= since:
                    count += 1
        return count

    def measure(self, tool):
        # LastModified has one-second resolution: start on a fresh second.
        time.sleep(1.05 - (time.time() % 1))
        since = float(int(time.time()))
        wall, task_s, module_s = self.run_tool(tool)
        return {
            "wall": wall,
            "task": task_s,
            "module": module_s,
            "written": self.written_since(tool, since),
        }


def median_run(runs):
    """Median of each measure over the rounds (a shared machine is noisy)."""
    out = {}
    for field in runs[0]:
        values = sorted(r[field] for r in runs if r[field] is not None)
        out[field] = statistics.median(values) if values else None
    return out


def touch(paths):
    now = time.time()
    for p in paths:
        os.utime(p, (now, now))


def edit(paths, share, seed):
    rng = random.Random(seed)
    chosen = rng.sample(paths, max(1, int(len(paths) * share)))
    for p in chosen:
        with open(p, "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 2] ^= 0xFF  # same size, other bytes
            f.seek(0)
            f.write(data)
    return len(chosen)


def fmt(x, digits=2):
    return "-" if x is None else "%.*f" % (digits, x)


def report(results, floor, files, tree_bytes, rtt_ms, repeat):
    lines = []
    lines.append(
        "Tree: %d files, %.1f MiB; %s; median of %d round(s). Times in seconds "
        "(wall clock of the command)."
        % (
            files,
            tree_bytes / 1048576,
            "%g ms added per request" % rtt_ms if rtt_ms else "no added latency",
            repeat,
        )
    )
    lines.append("")
    head = "| scenario | " + " | ".join(TOOLS) + " | s3_sync / ours | aws / ours | s5cmd / ours |"
    lines.append(head)
    lines.append("|" + "---|" * (len(TOOLS) + 1 + len(OTHERS)))
    for sc in SCENARIOS:
        row = results[sc]
        ours = row["s3_static_sync"]["wall"]
        cells = ["%s (%g)" % (fmt(row[t]["wall"]), row[t]["written"]) for t in TOOLS]
        ratios = [fmt(row[t]["wall"] / ours, 1) + "x" for t in OTHERS]
        lines.append("| %s | %s | %s |" % (sc, " | ".join(cells), " | ".join(ratios)))
    lines.append("")
    lines.append("(n) = objects written in that run.")
    lines.append("")
    lines.append("Module time only (Ansible task duration; no ansible-playbook start-up):")
    lines.append("")
    lines.append(
        "| scenario | s3_static_sync task | its own `seconds` | versioned task "
        "| its own `seconds` | s3_sync task | ratio |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for sc in SCENARIOS:
        ours = results[sc]["s3_static_sync"]
        versioned = results[sc]["versioned"]
        theirs = results[sc]["s3_sync"]
        lines.append(
            "| %s | %s | %s | %s | %s | %s | %sx |"
            % (
                sc,
                fmt(ours["task"]),
                fmt(ours["module"]),
                fmt(versioned["task"]),
                fmt(versioned["module"]),
                fmt(theirs["task"]),
                fmt(theirs["task"] / ours["task"], 1),
            )
        )
    nochange = results["no-change resync"]
    first = results["first upload"]
    code_only = results["code-only deploy"]
    lines.append("")
    lines.append(
        "Ansible's floor: a playbook whose one task is `ansible.builtin.ping` takes %s s "
        "wall, the task %s s. No Ansible module can be more than %s times faster than "
        "s3_sync's no-change task here (%s s / %s s)."
        % (
            fmt(floor["wall"]),
            fmt(floor["task"]),
            fmt(nochange["s3_sync"]["task"] / floor["task"], 1),
            fmt(nochange["s3_sync"]["task"]),
            fmt(floor["task"]),
        )
    )
    checks = [
        (
            "no-change resync >= 20x faster than s3_sync (task time)",
            nochange["s3_sync"]["task"] / nochange["s3_static_sync"]["task"] >= 20,
        ),
        ("no-change resync <= 2 s (wall)", nochange["s3_static_sync"]["wall"] <= 2.0),
        (
            "first upload at least as fast as aws s3 sync (wall)",
            first["s3_static_sync"]["wall"] <= first["aws"]["wall"],
        ),
        (
            "mtime-only change uploads 0 files",
            results["mtime-only change"]["s3_static_sync"]["written"] == 0,
        ),
        (
            "code-only deploy, versioned: 0 files written, module under 1 s",
            code_only["versioned"]["written"] == 0 and code_only["versioned"]["module"] < 1.0,
        ),
    ]
    lines.append("")
    for name, ok in checks:
        lines.append("- %s: %s" % (name, "PASS" if ok else "FAIL"))
    return "\n".join(lines), all(ok for _, ok in checks)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="size of the tree")
    parser.add_argument("--workers", type=int, help="s3_static_sync workers (module default)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--rtt-ms", type=float, default=0, help="delay added to every request (network stand-in)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are shown")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="gantry-s3-bench-")
    port = free_port()
    env = base_env(tmp)
    proxy = None
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, moto)
        direct = "http://127.0.0.1:%d" % port
        endpoint = direct
        if args.rtt_ms:
            proxy = LatencyProxy(port, args.rtt_ms / 1000.0)
            endpoint = "http://127.0.0.1:%d" % proxy.port
        bench = Bench(tmp, None, endpoint, direct, env, args.workers)
        runs = {sc: {tool: [] for tool in TOOLS} for sc in SCENARIOS}
        floors = []
        for rnd in range(args.repeat):
            # Each round: the same tree afresh, empty buckets.
            bench.round = rnd
            bench.tree = os.path.join(tmp, "static-%d" % rnd)
            paths = make_tree(bench.tree, args.files, args.seed)
            tree_bytes = sum(os.path.getsize(p) for p in paths)
            for tool in TOOLS:
                bench.s3.create_bucket(Bucket=bench.bucket(tool))
            floors.append(bench.ansible_floor())
            for sc in SCENARIOS:
                if sc == "mtime-only change":
                    touch(paths)
                elif sc == "1% changed":
                    edit(paths, 0.01, args.seed)
                for tool in TOOLS:
                    r = bench.measure(tool)
                    runs[sc][tool].append(r)
                    print(
                        "round %d %-18s %-15s %7.2fs  written %5d"
                        % (rnd + 1, sc, tool, r["wall"], r["written"]),
                        file=sys.stderr,
                        flush=True,
                    )
        results = {sc: {tool: median_run(runs[sc][tool]) for tool in TOOLS} for sc in SCENARIOS}
        floor = median_run(floors)
        table, ok = report(results, floor, len(paths), tree_bytes, args.rtt_ms, args.repeat)
        print(table)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {"files": len(paths), "bytes": tree_bytes, "runs": runs, "floor": floors},
                    f,
                    indent=1,
                )
        return 0 if ok else 1
    finally:
        if proxy:
            proxy.stop()
        moto.terminate()
        moto.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
