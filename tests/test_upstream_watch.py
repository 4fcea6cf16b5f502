"""upstream_watch judges one upstream socket from nginx's access log while nginx writes it.

Each test runs the module in-process on a synthetic log in the nginx_edge format, most
with a thread appending lines during the window as nginx would. Windows are at most 2 s
and the log is read every 0.1 s.
"""

import contextlib
import importlib.util
import io
import json
import os
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEW = "/run/gantry/shop/r2.sock"
OLD = "/run/gantry/shop/r1.sock"


def load_module():
    spec = importlib.util.spec_from_file_location(
        "gantry_test_upstream_watch", ROOT / "plugins" / "modules" / "upstream_watch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_module(args, check_mode=False):
    from ansible.module_utils.testing import patch_module_args

    module = load_module()
    out = io.StringIO()
    args = {"poll_interval": 0.1, **args, "_ansible_check_mode": check_mode}
    with patch_module_args(args), contextlib.redirect_stdout(out):
        with contextlib.suppress(SystemExit):
            module.main()
    return json.loads(out.getvalue())


def entry(status=200, socket=NEW, us=None, ua=None, request="GET / HTTP/1.1", agent="curl/8.5"):
    """One access log line of the gantry_<id> format, newline included."""
    ua = ua if ua is not None else f"unix:{socket}"
    us = us if us is not None else str(status)
    urt = ", ".join(["0.002"] * len(us.split(", ")))
    return (f'203.0.113.7 - - [25/Nov/2026:12:00:00 +0000] "{request}" {status} 512 "-" '
            f'"{agent}" rt=0.003 urt={urt} ua="{ua}" us={us} peer=203.0.113.7 '
            f"rid=0123456789abcdef\n")


def append(path, text):
    with open(path, "a") as log:
        log.write(text)


class Writer(threading.Thread):
    """Runs steps (callables or (delay, callable)) one after the other, as nginx would."""

    def __init__(self, *steps):
        super().__init__(daemon=True)
        self.steps = steps

    def run(self):
        for step in self.steps:
            delay, action = step if isinstance(step, tuple) else (0.05, step)
            time.sleep(delay)
            action()


def watch(log, writer=None, **args):
    args = {"path": str(log), "upstream": NEW, "seconds": 1.0, "threshold": 5,
            "min_requests": 20, "offset": log.stat().st_size if log.exists() else 0} | args
    if writer:
        writer.start()
    out = run_module(args)
    if writer:
        writer.join(5)
    return out


def lines(path, count, **line):
    """A step appending count lines, spread over a few writes."""
    return lambda: [append(path, entry(**line) * (count // 5)) for _ in range(5)]


# -- verdicts -------------------------------------------------------------------------

def test_a_healthy_upstream_passes_after_the_whole_window(tmp_path):
    log = tmp_path / "shop.access.log"
    log.write_text(entry(status=500) * 50)  # before the switch: not counted
    out = watch(log, Writer(lines(log, 40), lines(log, 20, status=404),
                            lines(log, 5, status=500)), seconds=1.0, threshold=10)
    assert out["verdict"] == "ok", out
    assert out["healthy"] is True and out["changed"] is False
    assert (out["requests"], out["failures"], out["failed_percent"]) == (65, 5, 7.69)
    assert out["statuses"] == {"200": 40, "404": 20, "500": 5}
    assert out["seconds"] >= 1.0


def test_a_failing_upstream_stops_the_watch_early(tmp_path):
    log = tmp_path / "shop.access.log"
    log.write_text("")
    out = watch(log, Writer(lines(log, 15), lines(log, 10, status=502, us="-"),
                            lines(log, 10, status=500)), seconds=2.0)
    assert out["verdict"] == "bad", out
    assert out["healthy"] is False
    assert out["seconds"] < 1.0, out
    assert out["failures"] * 100 > 5 * out["requests"] >= 5 * 20
    # A bad release is the module's answer, not its failure: Ansible reads a true
    # "failed" key as the task failing, and the caller could not switch back.
    assert out.get("failed", False) is False, out


def test_a_quiet_window_passes_even_when_it_fails(tmp_path):
    log = tmp_path / "shop.access.log"
    log.write_text("")
    out = watch(log, Writer(lines(log, 5, status=500)), seconds=0.5)
    assert (out["verdict"], out["healthy"], out["requests"], out["failures"]) == (
        "quiet", True, 5, 5), out


def test_a_retry_that_worked_is_not_a_failure(tmp_path):
    log = tmp_path / "shop.access.log"
    log.write_text("")
    retried = {"ua": f"unix:{NEW}, unix:{NEW}", "us": "502, 200"}
    failed_twice = {"ua": f"unix:{NEW}, unix:{NEW}", "us": "502, 502", "status": 502}
    out = watch(log, Writer(lines(log, 30, **retried), lines(log, 5, **failed_twice)),
                seconds=0.5, threshold=20)
    assert (out["verdict"], out["requests"], out["failures"]) == ("ok", 35, 5), out
    assert out["statuses"] == {"200": 30, "502": 5}


@pytest.mark.parametrize(("line", "failed"), [
    ({"status": 504, "us": "504"}, True),
    ({"status": 502, "us": "-"}, True),
    ({"status": 504, "us": "200"}, True),
    ({"status": 200, "us": "503 : 200", "ua": f"unix:{NEW} : unix:{NEW}"}, False),
    ({"status": 500, "us": "200 : 500", "ua": f"unix:{NEW} : unix:{NEW}"}, True),
    ({"status": 499, "us": "-"}, False),
    ({"status": 503, "us": "503"}, True),
], ids=["gateway-timeout", "bad-gateway-no-status", "nginx-504", "internal-redirect-ok",
        "internal-redirect-5xx", "client-closed", "app-503"])
def test_what_counts_as_failed(tmp_path, line, failed):
    log = tmp_path / "shop.access.log"
    log.write_text(entry(**line))
    out = watch(log, seconds=0, offset=0, min_requests=1, threshold=50)
    assert (out["requests"], out["failures"]) == (1, int(failed)), out


def test_other_upstreams_and_lines_without_one_are_ignored(tmp_path):
    log = tmp_path / "shop.access.log"
    log.write_text("")
    out = watch(log, Writer(lines(log, 50, status=500, socket=OLD),
                            lines(log, 10, status=500, socket=NEW + "2"),
                            lines(log, 10, status=301, ua="-", us="-"),
                            lines(log, 25)), seconds=0.6)
    assert (out["verdict"], out["requests"], out["failures"]) == ("ok", 25, 0), out
    assert out["unparsed"] == 0


def test_escaped_quotes_and_lookalike_fields_do_not_confuse_the_parser(tmp_path):
    log = tmp_path / "shop.access.log"
    fake = 'x\\x22 ua=\\x22unix:/elsewhere.sock\\x22 us=200 peer=1 rid=2'
    log.write_text(entry(status=500, request=f"GET /?q={fake} HTTP/1.1", agent=fake)
                   + "not an access log line\n")
    out = watch(log, seconds=0, offset=0, min_requests=1)
    assert (out["requests"], out["failures"], out["unparsed"]) == (1, 1, 1), out


# -- reading the log ------------------------------------------------------------------

def test_lines_before_the_offset_are_not_counted(tmp_path):
    log = tmp_path / "shop.access.log"
    log.write_text(entry(status=500) * 30 + entry() * 3)
    out = watch(log, seconds=0, offset=len(entry(status=500)) * 30, min_requests=1)
    assert (out["requests"], out["failures"], out["position"]) == (3, 0, log.stat().st_size)


def test_a_missing_log_is_waited_for_and_read_from_its_start(tmp_path):
    log = tmp_path / "shop.access.log"
    out = watch(log, Writer((0.3, lines(log, 25, status=500))), seconds=1.0, offset=4096)
    assert (out["verdict"], out["requests"]) == ("bad", 25), out


def test_a_log_that_stays_missing_is_quiet(tmp_path):
    out = watch(tmp_path / "none.log", seconds=0.3, offset=10)
    assert (out["verdict"], out["requests"], out["healthy"]) == ("quiet", 0, True), out


def test_a_truncated_log_is_read_again_from_its_start(tmp_path):
    log = tmp_path / "shop.access.log"
    log.write_text(entry() * 50)
    offset = log.stat().st_size
    out = watch(log, Writer(lines(log, 10), lambda: log.write_text(""),
                            lines(log, 25, status=502)), seconds=1.5, offset=offset)
    assert out["verdict"] == "bad", out
    assert out["failures"] == 25


def test_a_log_rotated_by_rename_is_followed_into_the_new_file(tmp_path):
    log = tmp_path / "shop.access.log"
    log.write_text("")
    unfinished = entry(status=500)[:-1]
    out = watch(log, Writer(lines(log, 10), lambda: append(log, unfinished),
                            lambda: os.rename(log, tmp_path / "shop.access.log.1"),
                            lines(log, 20)), seconds=1.0, threshold=10)
    # The old file's unfinished last line is counted, once, and not glued to the new file.
    assert (out["requests"], out["failures"], out["unparsed"]) == (31, 1, 0), out


def test_a_partial_last_line_waits_for_the_rest(tmp_path):
    log = tmp_path / "shop.access.log"
    log.write_text("")
    line = entry(status=500)
    out = watch(log, Writer(lambda: append(log, line[:40]), (0.3, lambda: append(log, line[40:]))),
                seconds=0.8, min_requests=1, threshold=50)
    assert (out["requests"], out["failures"], out["unparsed"], out["verdict"]) == (1, 1, 0, "bad")


# -- parameters and check mode --------------------------------------------------------

def test_check_mode_watches_nothing(tmp_path):
    start = time.monotonic()
    out = run_module({"path": str(tmp_path / "none.log"), "upstream": NEW, "seconds": 20},
                     check_mode=True)
    assert time.monotonic() - start < 1
    assert (out["verdict"], out["healthy"], out["changed"]) == ("skipped", True, False), out


def test_unix_prefix_is_accepted(tmp_path):
    log = tmp_path / "shop.access.log"
    log.write_text(entry())
    out = watch(log, seconds=0, offset=0, upstream=f"unix:{NEW}", min_requests=1)
    assert out["requests"] == 1, out


@pytest.mark.parametrize(("args", "message"), [
    ({"threshold": 101}, "threshold must be a percentage from 0 to 100, got 101"),
    ({"seconds": -1}, "seconds must be 0 or more, got -1"),
    ({"upstream": "run/shop.sock"}, "upstream must be an absolute socket path"),
    ({"offset": -5}, "offset must be 0 or more"),
    ({"min_requests": -1}, "min_requests must be 0 or more"),
    ({"seconds": "soon"}, "seconds"),
])
def test_bad_parameters_fail(tmp_path, args, message):
    out = run_module({"path": str(tmp_path / "log"), "upstream": NEW} | args)
    assert out.get("failed") is True, out
    assert message in out["msg"], out
