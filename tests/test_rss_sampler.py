"""molecule/default/files/rss_sampler.py, the upload proof's memory gauge, on this machine:
it must see a child's growth, follow children that start late, and leave the parent out."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

SAMPLER = Path(__file__).resolve().parents[1] / "molecule" / "default" / "files" / "rss_sampler.py"
MIB = 1024 * 1024

IDLE = "import time; time.sleep(30)"
# Once told to (argv[1] exists), touches every page of 80 MiB, so the growth is resident.
GROWS = (
    "import os, sys, time\n"
    "while not os.path.exists(sys.argv[1]): time.sleep(0.02)\n"
    "block = bytearray(80 * 1024 * 1024)\n"
    "block[::4096] = b'x' * len(block[::4096])\n"
    "time.sleep(30)\n"
)


def wait_for(ready, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s"
        time.sleep(0.05)


def sampled(out: Path, pid: int) -> bool:
    try:
        return str(pid) in json.loads(out.read_text())["workers"]
    except FileNotFoundError:
        return False


def test_sampler_measures_children_of_the_arbiter(tmp_path):
    out, stop = tmp_path / "rss.json", tmp_path / "stop"
    # This test's process plays the arbiter: the workers are its children.
    idle = subprocess.Popen([sys.executable, "-c", IDLE])
    sampler = subprocess.Popen(
        [sys.executable, str(SAMPLER), "--arbiter", str(os.getpid())]
        + ["--out", str(out), "--stop", str(stop), "--interval", "0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    late = None
    try:
        wait_for(out.exists, "first round")
        # Starts after the sampler, as a recycled worker would; grows once sampled.
        late = subprocess.Popen([sys.executable, "-c", GROWS, str(tmp_path / "grow")])
        wait_for(lambda: sampled(out, late.pid), "late child sampled")
        (tmp_path / "grow").touch()
        time.sleep(1.5)
        stop.touch()
        stdout, _ = sampler.communicate(timeout=10)
    finally:
        for process in (idle, late, sampler):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    assert sampler.returncode == 0
    result = json.loads(stdout)
    assert result == json.loads(out.read_text())
    assert result["samples"] >= 3
    workers = result["workers"]
    # The sampler is a child of this process too (so may be others of the test run's);
    # the arbiter itself is never sampled.
    assert {str(idle.pid), str(late.pid), str(sampler.pid)} <= set(workers)
    assert str(os.getpid()) not in workers
    grown = workers[str(late.pid)]
    assert grown["max_kib"] - grown["first_kib"] >= 70 * 1024
    quiet = workers[str(idle.pid)]
    assert quiet["max_kib"] - quiet["first_kib"] < 5 * 1024


def test_sampler_stops_by_itself(tmp_path):
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(SAMPLER), "--arbiter", "1", "--out", str(tmp_path / "rss.json")]
        + ["--stop", str(tmp_path / "never"), "--max-seconds", "0.5", "--interval", "0.1"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert time.monotonic() - started < 5
    assert json.loads(done.stdout)["samples"] >= 3
