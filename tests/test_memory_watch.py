"""Each worker's memory over its life: the watch the gunicorn role pastes into
gunicorn.conf.py (roles/gunicorn/templates/memory_watch.py), the rendered config's hooks,
a real Gunicorn writing its samples, and the worker_memory module that reads them for
playbooks/status.yml."""

import json
import logging
import os
import runpy
import sys
import time
from pathlib import Path

import pytest
from gantry_modules import load_module as load_plugin
from gantry_modules import run_module
from gantry_plays import gunicorn_serving, load_module, render_gunicorn_config, unix_get

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "gunicorn"
BIN = Path(sys.executable).parent
MemoryWatch = load_module(ROLE / "templates" / "memory_watch.py").MemoryWatch
worker_memory = load_plugin("worker_memory")
LOG = logging.getLogger("worker")


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_a_worker_writes_a_line_when_it_starts_then_at_most_every_interval(tmp_path):
    clock = Clock()
    watch = MemoryWatch(str(tmp_path / "memory"), "inst", every=60, keep=10, clock=clock)
    watch.start(1042, LOG)
    for requests in range(1, 5):
        clock.now += 20
        watch.after_request(requests, LOG)
    samples = lines(watch.path)
    assert Path(watch.path).name == f"inst-{os.getpid()}.jsonl"
    assert [s["requests"] for s in samples] == [0, 3]
    assert samples[0]["max_requests"] == 1042 and "max_requests" not in samples[1]
    assert samples[1]["t"] - samples[0]["t"] == 60
    assert all(s["rss_kib"] > 1024 for s in samples)


def test_a_long_life_is_thinned_keeping_its_first_and_last_samples(tmp_path):
    clock = Clock()
    watch = MemoryWatch(str(tmp_path), "inst", every=1, keep=10, max_bytes=2000, clock=clock)
    watch.start(0, LOG)
    for requests in range(1, 200):
        clock.now += 1
        watch.after_request(requests, LOG)
    samples = lines(watch.path)
    assert os.path.getsize(watch.path) <= 2000
    assert samples[0]["requests"] == 0 and samples[-1]["requests"] == 199
    assert [s["requests"] for s in samples] == sorted(s["requests"] for s in samples)


def test_a_starting_worker_keeps_only_the_newest_files(tmp_path):
    for index in range(5):
        old = tmp_path / f"old-{index}.jsonl"
        old.write_text("{}\n")
        os.utime(old, (1000 + index, 1000 + index))
    (tmp_path / "notes.txt").write_text("not ours")
    MemoryWatch(str(tmp_path), "inst", every=60, keep=3, clock=Clock()).start(0, LOG)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["old-3.jsonl", "old-4.jsonl", f"inst-{os.getpid()}.jsonl", "notes.txt"])


def test_a_directory_it_cannot_write_turns_the_watch_off_and_requests_go_on(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    watch = MemoryWatch(str(blocker / "memory"), "inst", every=0, keep=3, clock=Clock())
    with caplog.at_level(logging.WARNING):
        watch.start(0, LOG)
        watch.after_request(1, LOG)
    assert caplog.text.count("memory watch is off") == 1


def test_the_config_samples_each_worker_when_the_watch_is_on(tmp_path, monkeypatch):
    directory = tmp_path / "state" / "memory"
    config = render_gunicorn_config(tmp_path, {"gunicorn_memory_watch_seconds": 1,
                                               "gunicorn_memory_watch_dir": str(directory)})
    settings = runpy.run_path(str(config))
    monkeypatch.setenv("GANTRY_INSTANCE", "20261127T1015-abcd1234")

    class Worker:
        nr, max_requests, log, wsgi = 0, 1042, LOG, None

    worker = Worker()
    settings["post_worker_init"](worker)
    time.sleep(1.1)
    worker.nr = 7
    settings["post_request"](worker, None, {}, None)
    (path,) = directory.iterdir()
    assert path.name == f"20261127T1015-abcd1234-{os.getpid()}.jsonl"
    assert [s["requests"] for s in lines(path)] == [0, 7]


def test_the_watch_is_on_by_default_and_the_config_has_no_hooks_without_it(tmp_path):
    defaults = (ROLE / "defaults" / "main.yml").read_text()
    assert "\ngunicorn_memory_watch_seconds: 60\n" in defaults
    settings = runpy.run_path(str(render_gunicorn_config(
        tmp_path, {"gunicorn_memory_watch_seconds": 0})))
    assert "post_request" not in settings and "post_worker_init" not in settings


def write_worker(directory, name, samples, max_requests=1000):
    directory.mkdir(parents=True, exist_ok=True)
    rows = [dict(samples[0], max_requests=max_requests)] + samples[1:]
    (directory / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def sample(minute, requests, mib):
    return {"t": 1_000_000 + 60 * minute, "requests": requests, "rss_kib": int(mib * 1024)}


def test_a_leaking_worker_is_named_before_it_outgrows_its_budget(tmp_path):
    # 5 MiB per 100 requests past its warm-up: 150 MiB by its recycle at 1000.
    write_worker(tmp_path, "inst-101.jsonl",
                 [sample(0, 0, 40), sample(1, 100, 60), sample(2, 200, 65), sample(3, 300, 70)])
    result = worker_memory.read_workers(str(tmp_path), "inst", 100, alive=lambda pid: True)
    (worker,) = result["workers"]
    assert worker["mib_per_1000_requests"] == 50.0 and worker["at_recycle_mib"] == 105.0
    (message,) = result["over_budget"]
    assert "worker 101 holds 70.0 MiB after 300 requests" in message
    assert "it would hold 105.0 MiB" in message and "gunicorn_worker_memory_mb" in message
    assert worker["summary"].startswith("pid 101: 70.0 MiB (at start 40.0, peak 70.0)")


def test_growth_in_the_warm_up_alone_is_not_a_leak(tmp_path):
    write_worker(tmp_path, "inst-102.jsonl",
                 [sample(0, 0, 30), sample(1, 100, 80), sample(9, 900, 80.5)])
    result = worker_memory.read_workers(str(tmp_path), "inst", 100, alive=lambda pid: True)
    assert result["over_budget"] == []
    assert result["workers"][0]["at_recycle_mib"] < 82


def test_a_worker_never_recycled_is_warned_of_by_the_hour(tmp_path):
    write_worker(tmp_path, "inst-103.jsonl",
                 [sample(0, 0, 40), sample(1, 100, 50), sample(61, 150, 60)], max_requests=2**63)
    result = worker_memory.read_workers(str(tmp_path), "inst", 100, alive=lambda pid: True)
    assert result["workers"][0]["max_requests"] is None
    (message,) = result["over_budget"]
    assert "10.0 MiB an hour, is never recycled" in message and "in about 4.0 h" in message


def test_exited_workers_and_other_instances_are_kept_apart(tmp_path):
    write_worker(tmp_path, "inst-201.jsonl", [sample(0, 0, 40), sample(5, 1000, 44)])
    write_worker(tmp_path, "inst-202.jsonl", [sample(0, 0, 40), sample(5, 1000, 42)])
    write_worker(tmp_path, "other-301.jsonl", [sample(0, 0, 40), sample(5, 500, 400)])
    (tmp_path / "inst-203.jsonl").write_text('{"t": 1, "rss_kib": 1, "requests": 0}\n{"t": 2, "rs')
    result = worker_memory.read_workers(str(tmp_path), "inst", 100, alive=lambda pid: pid == 203)
    assert [w["pid"] for w in result["workers"]] == [203]
    assert result["recycled"] == {"count": 2, "median_growth_mib": 3.0, "max_growth_mib": 4.0}
    assert result["over_budget"] == []


def test_the_module_reports_nothing_before_any_sample(tmp_path):
    result = run_module("worker_memory", {"path": str(tmp_path / "none"), "instance": "x"})
    assert not result.get("failed") and result["workers"] == [] and not result["changed"]


def test_gunicorn_workers_write_samples_the_module_reads(tmp_path):
    if not (BIN / "gunicorn").exists():
        pytest.skip("gunicorn is not installed beside this Python")
    directory = tmp_path / "memory"
    config = render_gunicorn_config(tmp_path, {"gunicorn_memory_watch_seconds": 1,
                                               "gunicorn_memory_watch_dir": str(directory)})
    (tmp_path / "shop.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'ok']\n")
    with gunicorn_serving(config, tmp_path, workers=2, env={"GANTRY_INSTANCE": "inst"}) as (
            sock, output):
        deadline = time.monotonic() + 30
        while len(list(directory.glob("inst-*.jsonl"))) < 2:
            assert time.monotonic() < deadline, "no workers"
            time.sleep(0.2)
        time.sleep(1.1)
        for _ in range(20):
            assert unix_get(sock, "/")[0] == 200
        result = run_module("worker_memory", {"path": str(directory), "instance": "inst",
                                              "budget_mb": 150})
    assert len(result["workers"]) == 2, (result, output)
    assert sum(w["requests"] for w in result["workers"]) >= 1, result
    assert all(w["max_requests"] >= 1000 for w in result["workers"])
    assert result["over_budget"] == [] and "memory watch" not in output[0]
