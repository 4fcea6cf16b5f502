#!/usr/bin/python
"""Watch one upstream's 5xx share in an nginx access log for a window after a switch."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: upstream_watch
short_description: Watch the share of failed requests of one upstream socket in nginx's access log
description:
  - After nginx was switched to a new Gunicorn instance, reads the app's access log
    (the C(gantry_<app>) format of the C(nginx_edge) role) from O(offset) for O(seconds)
    and counts the requests that went to O(upstream) and how many of them failed.
  - A request belongs to O(upstream) when one of the entries of its C($upstream_addr)
    field is C(unix:)O(upstream) (nginx lists every entry it tried, so a request retried
    on the same socket counts once).
  - A request failed when its final upstream status (the last of C($upstream_status),
    the answer the client got from the app) is 5xx, or nginx's own C($status) is 502 or
    504. A C(502) followed by a C(200) (a retry that worked) is not a failure.
  - The log is read every O(poll_interval) seconds. The watch stops early with
    RV(verdict=bad) as soon as at least O(min_requests) requests were seen and the
    failed share is above O(threshold); otherwise it runs for the whole window.
  - A log that does not exist yet is read as empty until it appears. A log that is
    shorter than the position read so far (truncated, or rotated by copytruncate) and a
    log replaced by a new file (rotated by rename) are read again from their start. A
    last line without its newline yet is kept until the next read completes it.
  - Never fails because the upstream is unhealthy; the caller decides what to do with
    RV(healthy). Fails only on bad parameters. Reads only; it never reports a change.
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
options:
  path:
    description: The access log nginx writes for the app.
    type: path
    required: true
  offset:
    description:
      - Byte offset in O(path) where the window starts, usually the log's size recorded
        just before the switch (fact C(nginx_edge_upstream_log_offset) of the
        C(nginx_edge) role's C(upstream) entry point). Lines before it are not counted.
    type: int
    default: 0
  upstream:
    description:
      - Absolute path of the unix socket the requests to watch went to, as in the
        upstream's C(server unix:<path>) (a leading C(unix:) is accepted and dropped).
    type: str
    required: true
  seconds:
    description: Length of the window in seconds, 0 or more (0 reads the log once).
    type: float
    default: 20
  threshold:
    description:
      - Largest share of failed requests, in percent (0-100), that still passes. The
        verdict is RV(verdict=bad) when the share is above it.
    type: float
    default: 1
  min_requests:
    description:
      - Fewest requests for a verdict. A window with fewer is RV(verdict=quiet) and
        passes; a handful of requests says too little to switch back for.
    type: int
    default: 20
  poll_interval:
    description: Seconds between two reads of the log (0.05-10).
    type: float
    default: 0.5
notes:
  - Supports check mode, in which it returns at once with RV(verdict=skipped) and
    RV(healthy=true), since a check run switched nothing and there is nothing to watch.
  - Python 3 standard library only; runs on the host that writes the log.
"""

EXAMPLES = r"""
- name: Switch nginx to the new instance
  ansible.builtin.include_role:
    name: nginx_edge
    tasks_from: upstream
  vars:
    nginx_edge_upstream_sockets: ["/run/gantry/shop/{{ new_instance }}.sock"]

- name: Watch the new instance's 5xx share for 20 seconds
  upstream_watch:
    path: "{{ nginx_edge_access_log }}"
    offset: "{{ nginx_edge_upstream_log_offset }}"
    upstream: "/run/gantry/shop/{{ new_instance }}.sock"
    seconds: 20
    threshold: 2
    min_requests: 20
  register: watch

- name: Switch back to the old instance when the new one fails too often
  ansible.builtin.include_role:
    name: nginx_edge
    tasks_from: upstream
  vars:
    nginx_edge_upstream_sockets: ["/run/gantry/shop/{{ old_instance }}.sock"]
  when: not watch.healthy
"""

RETURN = r"""
verdict:
  description:
    - C(bad) when at least O(min_requests) requests were seen and more than O(threshold)
      percent of them failed (the watch stops as soon as that holds); C(quiet) when fewer
      than O(min_requests) requests were seen; C(ok) otherwise; C(skipped) in check mode.
  returned: always
  type: str
  sample: ok
healthy:
  description: Whether the verdict is not C(bad).
  returned: always
  type: bool
  sample: true
requests:
  description: Requests to O(upstream) logged in the window.
  returned: always
  type: int
  sample: 240
failures:
  description:
    - Those of RV(requests) that failed. Not named C(failed), which Ansible reads as the
      module's own failure.
  returned: always
  type: int
  sample: 1
failed_percent:
  description: RV(failures) in percent of RV(requests), rounded to 2 decimals; 0 without requests.
  returned: always
  type: float
  sample: 0.42
statuses:
  description: Count of each status nginx sent to clients for the requests to O(upstream).
  returned: always
  type: dict
  sample: {"200": 238, "302": 1, "502": 1}
seconds:
  description: Seconds the watch ran.
  returned: always
  type: float
  sample: 20.01
position:
  description: Byte offset in the log file read last where the watch stopped.
  returned: always
  type: int
  sample: 1048576
unparsed:
  description: Complete lines in the window that are not in the C(gantry_<app>) format.
  returned: always
  type: int
  sample: 0
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

# The tail of the gantry_<id> format. nginx escapes '"' inside values (as \x22), so a raw
# quote only ever delimits a field, and anchoring at the end of the line cannot be fooled
# by a request or user agent that spells "ua=".
TAIL_RE = re.compile(
    r'\] "[^"]*" (?P<status>\d{3}) \S+ "[^"]*" "[^"]*" rt=\S* urt=.* '
    r'ua="(?P<ua>[^"]*)" us=(?P<us>.*) peer=\S* rid=\S*$'
)
# nginx separates the servers it tried with ", " and upstream groups of an internal
# redirect with " : ".
LIST_SEP_RE = re.compile(r", | : ")


def parse(line):
    """Return (status, [addresses], [upstream statuses]) of one log line, or None."""
    match = TAIL_RE.search(line)
    if match is None:
        return None
    return (
        match["status"],
        LIST_SEP_RE.split(match["ua"].strip()),
        LIST_SEP_RE.split(match["us"].strip()),
    )


class Window:
    """Counts of one upstream's requests and failures."""

    def __init__(self, upstream):
        self.address = "unix:" + upstream
        self.requests = 0
        self.failed = 0
        self.unparsed = 0
        self.statuses = {}

    def add(self, line):
        parsed = parse(line)
        if parsed is None:
            self.unparsed += 1
            return
        status, addresses, upstream_statuses = parsed
        if self.address not in addresses:
            return
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        final = upstream_statuses[-1]
        if final.startswith("5") or status in ("502", "504"):
            self.failed += 1

    @property
    def percent(self):
        return round(100.0 * self.failed / self.requests, 2) if self.requests else 0.0

    def above(self, threshold):
        """Whether the failed share is above threshold percent (exact, not rounded)."""
        return self.failed * 100.0 > threshold * self.requests


class LogReader:
    """Reads the complete lines appended to a log since the last read, across rotations."""

    def __init__(self, path, offset):
        self.path = path
        self.position = offset
        self.handle = None
        self.partial = b""

    def _restart(self):
        # What was before the new start is gone or belongs to another file: a piece of
        # line kept from it would glue onto the first new line.
        self.position = 0
        self.partial = b""

    def _open(self):
        try:
            self.handle = open(self.path, "rb")
        except FileNotFoundError:
            # Whatever file appears later is a new one, written from its start.
            self._restart()
            return False
        return True

    def _read_to_end(self):
        if os.fstat(self.handle.fileno()).st_size < self.position:
            self._restart()
        self.handle.seek(self.position)
        data = self.handle.read()
        self.position += len(data)
        return data

    def _renamed(self):
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            # Removed: nginx writes to the file it holds open until it reopens its logs.
            return False
        held = os.fstat(self.handle.fileno())
        return (current.st_ino, current.st_dev) != (held.st_ino, held.st_dev)

    def read_lines(self):
        """Return the complete lines written since the last call."""
        if self.handle is None and not self._open():
            return []
        data = self.partial + self._read_to_end()
        if self._renamed():
            # Rotated by rename: the old file is read to its end above, and nothing more
            # will be appended to an unfinished last line of it.
            self.handle.close()
            self.handle = None
            if data and not data.endswith(b"\n"):
                data += b"\n"
            self._restart()
            if self._open():
                data += self._read_to_end()
        *lines, self.partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def close(self):
        if self.handle is not None:
            self.handle.close()


def watch(path, offset, upstream, seconds, threshold, min_requests, poll_interval,
          clock=time.monotonic, sleep=time.sleep):
    """Watch the window; return the module's result."""
    window = Window(upstream)
    reader = LogReader(path, offset)
    start = clock()
    deadline = start + seconds
    verdict = None
    try:
        while True:
            for line in reader.read_lines():
                if line.strip():
                    window.add(line)
            if window.requests >= min_requests and window.above(threshold):
                verdict = "bad"
                break
            now = clock()
            if now >= deadline:
                break
            sleep(min(poll_interval, deadline - now))
    finally:
        reader.close()
    if verdict is None:
        # Below min_requests nothing is judged, not even a window of failures only.
        verdict = "quiet" if window.requests < min_requests else "ok"
    return {
        "changed": False,
        "verdict": verdict,
        "healthy": verdict != "bad",
        "requests": window.requests,
        "failures": window.failed,
        "failed_percent": window.percent,
        "statuses": window.statuses,
        "seconds": round(clock() - start, 3),
        "position": reader.position,
        "unparsed": window.unparsed,
    }


def check_params(params):
    """Return a message for each bad parameter."""
    errors = []
    upstream = params["upstream"]
    if not upstream.startswith("/") or any(c.isspace() for c in upstream):
        errors.append(f"upstream must be an absolute socket path without spaces, got {upstream!r}")
    if params["offset"] < 0:
        errors.append(f"offset must be 0 or more, got {params['offset']}")
    if params["seconds"] < 0:
        errors.append(f"seconds must be 0 or more, got {params['seconds']}")
    if not 0 <= params["threshold"] <= 100:
        errors.append(f"threshold must be a percentage from 0 to 100, got {params['threshold']}")
    if params["min_requests"] < 0:
        errors.append(f"min_requests must be 0 or more, got {params['min_requests']}")
    if not 0.05 <= params["poll_interval"] <= 10:
        errors.append(
            f"poll_interval must be from 0.05 to 10 seconds, got {params['poll_interval']}")
    return errors


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "offset": {"type": "int", "default": 0},
            "upstream": {"type": "str", "required": True},
            "seconds": {"type": "float", "default": 20},
            "threshold": {"type": "float", "default": 1},
            "min_requests": {"type": "int", "default": 20},
            "poll_interval": {"type": "float", "default": 0.5},
        },
        supports_check_mode=True,
    )
    params = dict(module.params)
    params["upstream"] = params["upstream"].removeprefix("unix:")
    errors = check_params(params)
    if errors:
        module.fail_json(msg="; ".join(errors))
    if module.check_mode:
        module.exit_json(changed=False, verdict="skipped", healthy=True, requests=0, failures=0,
                         failed_percent=0.0, statuses={}, seconds=0.0,
                         position=params["offset"], unparsed=0)
    module.exit_json(**watch(
        params["path"], params["offset"], params["upstream"], params["seconds"],
        params["threshold"], params["min_requests"], params["poll_interval"],
    ))


if __name__ == "__main__":
    main()
