#!/usr/bin/python
"""Sum up the request profiles Gunicorn's workers kept: the hottest functions."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: request_profiles
short_description: Sum up sampled request profiles into the hottest functions
description:
  - Reads the profiles that the gunicorn role's sampled request profiling writes
    (C(gunicorn_profiling_rate); C(<ms since epoch>-<pid>-<method>-<path>-<ms>ms.prof), in
    the format of Python's C(pstats)), adds them up, and returns the functions that took
    the most time, with the requests the profiles come from.
  - Files are looked for under O(path), in every subdirectory too (C(playbooks/profile.yml)
    fetches each host's into a directory of its own). Files still being written
    (C(.part)) are skipped; a file C(pstats) cannot read is counted in RV(unreadable).
  - With O(picture), and when the C(gprof2dot) and Graphviz C(dot) commands are on the
    C(PATH), also draws the call graph of the summed profiles as an SVG file.
  - Reads only, except for the picture; check mode reads and draws nothing.
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
options:
  path:
    description: Directory holding the profiles (and subdirectories of them).
    type: path
    required: true
  top:
    description: How many functions to return.
    type: int
    default: 15
  sort:
    description:
      - V(cumulative) ranks functions by the time spent in them and in what they call (where
        a request's time goes), V(tottime) by the time spent in their own code (what to
        make faster).
    type: str
    choices: [cumulative, tottime]
    default: tottime
  path_filter:
    description:
      - Only profiles of requests whose path contains this text (in the file name, the path
        with every character other than letters and digits turned into C(_)).
    type: str
  picture:
    description: Where to write the call graph (SVG), when the commands to draw it exist.
    type: path
"""

EXAMPLES = r"""
- name: Sum up the profiles fetched from every host
  request_profiles:
    path: .gantry/profiles
    top: 20
    picture: .gantry/profiles/hottest.svg
  register: hottest

- name: Only the profiles of /reports/, ranked with what each function calls
  request_profiles:
    path: .gantry/profiles
    path_filter: reports
    sort: cumulative
"""

RETURN = r"""
profiles:
  description: How many profiles were added up.
  type: int
  returned: always
  sample: 42
unreadable:
  description: Files that were skipped because pstats could not read them.
  type: list
  elements: str
  returned: always
requests:
  description: Profiled requests per method and path (as in the file names), most first.
  type: list
  elements: dict
  returned: always
  sample: [{request: GET cpu, count: 40, mean_ms: 24.5, max_ms: 61}]
total_seconds:
  description: Time of all the profiled requests together, as cProfile measured it.
  type: float
  returned: always
functions:
  description:
    - The hottest functions, hottest first, each with C(function) (name), C(file),
      C(line), C(calls), C(tottime) and C(cumtime) (seconds, summed over the profiles)
      and C(share) (percent of RV(total_seconds) that the sort key holds; with
      O(sort=cumulative) it can pass 100 where generators are involved, as cProfile adds a
      generator's time up at each resume).
  type: list
  elements: dict
  returned: always
  sample: [{function: count_primes, file: /srv/shop/releases/r1/venv/lib/python3.11/views.py,
            line: 23, calls: 40, tottime: 0.1, cumtime: 0.9, share: 91.3}]
picture:
  description: The SVG written, or why none was.
  type: str
  returned: when O(picture) is set
"""

import os
import pstats
import re
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule

NAME = re.compile(r"^\d+-\d+-(?P<method>[A-Z]+)-(?P<path>\w*)-(?P<ms>\d+)ms\.prof$")


def find_profiles(root, path_filter=None):
    """(path, method, request path, ms) of every profile under root, sorted by path."""
    found = []
    for directory, _subdirs, files in os.walk(root):
        for name in files:
            match = NAME.match(name)
            if not match or (path_filter and path_filter not in match["path"]):
                continue
            found.append((os.path.join(directory, name), match["method"], match["path"],
                          int(match["ms"])))
    return sorted(found)


def summarize_requests(profiles):
    by_request = {}
    for _file, method, path, ms in profiles:
        by_request.setdefault(f"{method} {path or 'root'}", []).append(ms)
    return sorted(
        ({"request": request, "count": len(times), "mean_ms": round(sum(times) / len(times), 1),
          "max_ms": max(times)} for request, times in by_request.items()),
        key=lambda row: (-row["count"], row["request"]),
    )


def add_up(paths):
    """(pstats.Stats of every readable profile or None, the unreadable paths)."""
    stats, unreadable = None, []
    for path in paths:
        try:
            if stats is None:
                stats = pstats.Stats(path)
            else:
                stats.add(path)
        except (OSError, EOFError, ValueError, TypeError) as exc:
            unreadable.append(f"{path}: {exc}")
    return stats, unreadable


def hottest(stats, sort, top):
    """The top functions by sort key, and the profiled time they are a share of."""
    total = stats.total_tt
    rows = []
    for (file, line, name), (_prim, calls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append({"function": name, "file": file, "line": line, "calls": calls,
                     "tottime": round(tottime, 6), "cumtime": round(cumtime, 6)})
    key = "cumtime" if sort == "cumulative" else "tottime"
    rows.sort(key=lambda row: (-row[key], row["file"], row["line"], row["function"]))
    for row in rows:
        row["share"] = round(100 * row[key] / total, 1) if total else 0.0
    return rows[:top], total


def draw(stats, picture):
    gprof2dot, dot = shutil.which("gprof2dot"), shutil.which("dot")
    if not (gprof2dot and dot):
        return "not drawn: gprof2dot and Graphviz's dot must be on the PATH"
    os.makedirs(os.path.dirname(os.path.abspath(picture)), exist_ok=True)
    summed = picture + ".pstats"
    stats.dump_stats(summed)
    try:
        graph = subprocess.run([gprof2dot, "-f", "pstats", summed], capture_output=True,
                               check=True, timeout=300).stdout
        subprocess.run([dot, "-Tsvg", "-o", picture], input=graph, capture_output=True,
                       check=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"not drawn: {exc}"
    finally:
        os.remove(summed)
    return picture


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "top": {"type": "int", "default": 15},
            "sort": {"type": "str", "choices": ["cumulative", "tottime"], "default": "tottime"},
            "path_filter": {"type": "str"},
            "picture": {"type": "path"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["top"] < 1:
        module.fail_json(msg=f"top is {params['top']}: give 1 or more")
    if not os.path.isdir(params["path"]):
        module.fail_json(msg=f"{params['path']} is not a directory: fetch the profiles first "
                             "(playbooks/profile.yml)")
    profiles = find_profiles(params["path"], params["path_filter"])
    stats, unreadable = add_up([p[0] for p in profiles])
    result = {"changed": False, "profiles": len(profiles) - len(unreadable),
              "unreadable": unreadable, "requests": summarize_requests(profiles),
              "functions": [], "total_seconds": 0.0}
    if stats is not None:
        result["functions"], total = hottest(stats, params["sort"], params["top"])
        result["total_seconds"] = round(total, 6)
    if params["picture"]:
        if stats is None:
            result["picture"] = "not drawn: no profile"
        elif module.check_mode:
            result["picture"] = "not drawn: check mode"
        else:
            result["picture"] = draw(stats, params["picture"])
            result["changed"] = result["picture"] == params["picture"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
