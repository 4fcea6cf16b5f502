"""Sampled request profiling: the middleware the gunicorn role pastes into
gunicorn.conf.py (roles/gunicorn/templates/request_profiler.py), the rendered config's
post_worker_init, and the request_profiles module that adds the profiles up."""

import os
import pstats
import runpy
import threading
from pathlib import Path

import pytest
import yaml
from gantry_modules import run_module
from gantry_plays import load_module, render_gunicorn_config

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "gunicorn"


RequestProfiler = load_module(ROLE / "templates" / "request_profiler.py").RequestProfiler


def count_primes(limit):
    return sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))


def app(environ, start_response):
    if environ["PATH_INFO"] == "/fails":
        raise RuntimeError("boom")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(count_primes(3000)).encode()]


def call(wrapped, path="/cpu", method="GET"):
    statuses = []
    body = wrapped({"PATH_INFO": path, "REQUEST_METHOD": method}, lambda s, h: statuses.append(s))
    return statuses, b"".join(body)


def profiles(directory):
    return sorted(p.name for p in Path(directory).glob("*.prof"))


def test_a_sampled_request_keeps_its_profile_and_its_answer(tmp_path):
    wrapped = RequestProfiler(app, str(tmp_path / "profiles"), rate=1, min_ms=0, max_bytes=10**7)
    assert call(wrapped, "/reports/2026/") == (["200 OK"], call(app)[1])
    (name,) = profiles(tmp_path / "profiles")
    assert name.split("-")[2:4] == ["GET", "reports_2026"]
    functions = {func[2] for func in pstats.Stats(str(tmp_path / "profiles" / name)).stats}
    assert "count_primes" in functions
    assert not list((tmp_path / "profiles").glob("*.part"))


def test_rate_zero_profiles_nothing(tmp_path):
    wrapped = RequestProfiler(app, str(tmp_path), rate=0, min_ms=0, max_bytes=10**7)
    for _ in range(50):
        call(wrapped)
    assert profiles(tmp_path) == []


def test_a_fraction_of_requests_is_sampled(tmp_path):
    wrapped = RequestProfiler(app, str(tmp_path), rate=0.2, min_ms=0, max_bytes=10**7)
    for _ in range(300):
        call(wrapped)
    # 60 expected; a binomial(300, 0.2) falls outside 25-95 with probability < 1e-9.
    assert 25 <= len(profiles(tmp_path)) <= 95


def test_fast_requests_are_not_kept(tmp_path):
    # Read at the start, at each request's start and end, then by the pruning check.
    ticks = iter([0.0, 1.0, 1.004, 2.0, 2.030])
    wrapped = RequestProfiler(app, str(tmp_path), rate=1, min_ms=10, max_bytes=10**7,
                              clock=lambda: next(ticks, 100.0))
    call(wrapped, "/fast")
    call(wrapped, "/slow")
    assert [name.split("-")[3:] for name in profiles(tmp_path)] == [["slow", "30ms.prof"]]


def test_a_failing_request_still_raises_and_is_profiled(tmp_path):
    wrapped = RequestProfiler(app, str(tmp_path), rate=1, min_ms=0, max_bytes=10**7)
    with pytest.raises(RuntimeError, match="boom"):
        call(wrapped, "/fails")
    assert len(profiles(tmp_path)) == 1


def test_the_directory_stays_under_its_cap(tmp_path):
    wrapped = RequestProfiler(app, str(tmp_path), rate=1, min_ms=0, max_bytes=40_000)
    wrapped.PRUNE_BYTES = 1
    for _ in range(40):
        call(wrapped)
    sizes = [p.stat().st_size for p in tmp_path.glob("*.prof")]
    assert sum(sizes) <= 40_000 and len(sizes) >= 1
    # The newest are the ones kept.
    assert max(p.stat().st_mtime for p in tmp_path.glob("*.prof")) >= wrapped.last_prune - 60


def test_one_request_per_worker_is_profiled_at_a_time(tmp_path):
    inside, release = threading.Event(), threading.Event()

    def slow(environ, start_response):
        if environ["PATH_INFO"] == "/first":
            inside.set()
            release.wait(10)
        start_response("200 OK", [])
        return [b""]

    wrapped = RequestProfiler(slow, str(tmp_path), rate=1, min_ms=0, max_bytes=10**7)
    first = threading.Thread(target=call, args=(wrapped, "/first"))
    first.start()
    assert inside.wait(10)
    # Answered, not profiled: the worker's profiler is busy.
    assert call(wrapped, "/second") == (["200 OK"], b"")
    release.set()
    first.join(10)
    assert [name.split("-")[3] for name in profiles(tmp_path)] == ["first"]


def test_the_config_wraps_each_worker_app_when_profiling_is_on(tmp_path):
    directory = tmp_path / "state" / "profiles"
    config = render_gunicorn_config(tmp_path, {"gunicorn_profiling_rate": 1,
                                               "gunicorn_profiling_min_ms": 0,
                                               "gunicorn_profiling_dir": str(directory)})
    settings = runpy.run_path(str(config))

    class Worker:
        wsgi = staticmethod(app)

    worker = Worker()
    settings["post_worker_init"](worker)
    assert call(worker.wsgi)[0] == ["200 OK"]
    assert len(profiles(directory)) == 1


def test_the_config_has_no_hook_when_profiling_is_off(tmp_path):
    settings = runpy.run_path(str(render_gunicorn_config(tmp_path, {})))
    assert "post_worker_init" not in settings and "RequestProfiler" not in settings


def make_profiles(directory, requests):
    directory.mkdir(parents=True, exist_ok=True)
    wrapped = RequestProfiler(app, str(directory), rate=1, min_ms=0, max_bytes=10**8)
    for path in requests:
        call(wrapped, path)


def test_the_module_names_the_hottest_function_across_hosts(tmp_path):
    make_profiles(tmp_path / "host-1", ["/cpu"] * 3)
    make_profiles(tmp_path / "host-2", ["/cpu", "/items"])
    (tmp_path / "host-2" / "1-2-GET-cpu-5ms.prof.part").write_text("half")
    # By cumulative time: by own time, count_primes (which only calls sum) ties with cheap
    # frames such as start_response and may fall out of the top five.
    result = run_module("request_profiles", {"path": str(tmp_path), "top": 5,
                                             "sort": "cumulative"})
    assert result["profiles"] == 5 and result["unreadable"] == []
    assert [r["request"] for r in result["requests"]] == ["GET cpu", "GET items"]
    assert result["requests"][0]["count"] == 4
    names = [f["function"] for f in result["functions"]]
    assert len(names) == 5 and "count_primes" in names
    assert result["total_seconds"] > 0


def test_the_module_filters_by_path_and_sorts_by_own_time(tmp_path):
    make_profiles(tmp_path, ["/cpu", "/items", "/items"])
    result = run_module("request_profiles", {"path": str(tmp_path), "path_filter": "items",
                                             "sort": "tottime", "top": 3})
    assert result["profiles"] == 2
    own = [f["tottime"] for f in result["functions"]]
    assert own == sorted(own, reverse=True)
    # Own times are parts of the whole: their shares add up to at most 100.
    assert 0 < sum(f["share"] for f in result["functions"]) <= 100.1


def test_a_broken_profile_is_reported_not_fatal(tmp_path):
    make_profiles(tmp_path, ["/cpu"])
    (tmp_path / "1-2-GET-cpu-9ms.prof").write_bytes(b"not a profile")
    result = run_module("request_profiles", {"path": str(tmp_path)})
    assert result["profiles"] == 1 and len(result["unreadable"]) == 1
    assert "count_primes" in [f["function"] for f in result["functions"]]


def test_no_picture_without_the_tools(tmp_path, monkeypatch):
    make_profiles(tmp_path, ["/cpu"])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    picture = tmp_path / "g.svg"
    result = run_module("request_profiles", {"path": str(tmp_path), "picture": str(picture)})
    assert result["picture"].startswith("not drawn:") and not result["changed"]
    assert not picture.exists()


def test_a_missing_directory_says_what_to_do(tmp_path):
    result = run_module("request_profiles", {"path": str(tmp_path / "nothing")})
    assert result["failed"] and "playbooks/profile.yml" in result["msg"]


def test_profile_directories_are_private_to_the_app(tmp_path):
    RequestProfiler(app, str(tmp_path / "p"), rate=1, min_ms=0, max_bytes=1)
    assert oct(os.stat(tmp_path / "p").st_mode & 0o777) == oct(0o750 & ~current_umask())


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_profiling_is_off_unless_an_inventory_turns_it_on():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    production = yaml.safe_load(
        (ROOT / "inventories" / "production" / "group_vars" / "all" / "main.yml").read_text())
    assert defaults["gunicorn_profiling_rate"] == 0
    assert "gunicorn_profiling_rate" not in production
