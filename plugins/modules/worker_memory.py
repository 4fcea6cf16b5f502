#!/usr/bin/python
"""Each Gunicorn worker's memory over its life, and which would outgrow its budget."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: worker_memory
short_description: Read each Gunicorn worker's memory over its life and spot slow leaks
description:
  - Reads the samples that the gunicorn role's memory watch writes
    (C(gunicorn_memory_watch_seconds)), one file per worker,
    C(<instance>-<pid>.jsonl), one JSON line per sample (C(t), C(rss_kib),
    C(requests); the first also C(max_requests)).
  - Returns, for each worker of O(instance), its resident memory at its first sample,
    now and at its peak, the requests it served, and its growth per 1,000 requests and
    per hour (from its first sample after 100 requests, past the warm-up of imports,
    caches and pools, over at least 100 more requests or 5 minutes); and a warning for
    each running worker that would pass O(budget_mb) before it is recycled (at its
    C(max_requests)), or, when workers are never recycled, within a day. Workers of the
    instance that exited (recycled) are summed up too, by how much one grew over its life.
  - Reads only; check mode reads the same.
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
options:
  path:
    description: The memory watch's directory (C(gunicorn_memory_watch_dir)).
    type: path
    required: true
  instance:
    description: Only the workers of this instance (the part of the file name before the pid).
    type: str
    required: true
  budget_mb:
    description: What one worker may hold (C(gunicorn_worker_memory_mb)); 0 warns of nothing.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Read the memory of the workers of the instance in service
  worker_memory:
    path: /var/lib/shop/memory
    instance: 20261127T101500-1a2b3c4d
    budget_mb: 150
  register: memory
"""

RETURN = r"""
workers:
  description: The running workers of the instance, the largest first.
  type: list
  elements: dict
  returned: always
  sample:
    - {pid: 4242, samples: 31, requests: 2310, age_hours: 0.5, first_mib: 61.2, now_mib: 84.9,
       peak_mib: 84.9, mib_per_1000_requests: 10.3, mib_per_hour: 47.4, max_requests: 1042,
       at_recycle_mib: 76.1, summary: "pid 4242: 84.9 MiB (at start 61.2, peak 84.9) after 2310
       requests in 0.5 h; +10.3 MiB per 1000 requests, +47.4 MiB per hour; recycled at 1042
       requests (about 76.1 MiB then)"}
recycled:
  description: >-
    Workers of the instance that exited: how many, and the median and largest growth
    (MiB) one had over its life.
  type: dict
  returned: always
  sample: {count: 12, median_growth_mib: 3.1, max_growth_mib: 4.0}
over_budget:
  description: One sentence per running worker that holds, or would pass, O(budget_mb).
  type: list
  elements: str
  returned: always
unreadable:
  description: Files of the instance that could not be read.
  type: list
  elements: str
  returned: always
"""

import json
import os
import re
import statistics

from ansible.module_utils.basic import AnsibleModule

# Gunicorn's max_requests when recycling is off (sys.maxsize).
NEVER = 2**62
# A worker's first requests fill its imports, caches and pools: growth is counted from
# its first sample after WARM_REQUESTS, over at least MIN_REQUESTS or MIN_SECONDS more.
WARM_REQUESTS = 100
MIN_REQUESTS = 100
MIN_SECONDS = 300
DAY_HOURS = 24


def read_samples(path):
    samples = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                sample = json.loads(line)
            except ValueError:
                continue  # the line a worker was writing when the file was read
            if isinstance(sample, dict) and {"t", "rss_kib", "requests"} <= sample.keys():
                samples.append(sample)
    return samples


def is_gunicorn(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"gunicorn" in handle.read()
    except OSError:
        return False


def mib(kib):
    return round(kib / 1024, 1)


def describe(pid, samples):
    first, now = samples[0], samples[-1]
    max_requests = first.get("max_requests", NEVER)
    warm = next((s for s in samples if s["requests"] >= WARM_REQUESTS), now)
    served = now["requests"] - warm["requests"]
    seconds = now["t"] - warm["t"]
    growth_kib = now["rss_kib"] - warm["rss_kib"]
    worker = {
        "pid": pid,
        "samples": len(samples),
        "requests": now["requests"],
        "age_hours": round(seconds / 3600, 2),
        "first_mib": mib(first["rss_kib"]),
        "now_mib": mib(now["rss_kib"]),
        "peak_mib": mib(max(s["rss_kib"] for s in samples)),
        "mib_per_1000_requests": (mib(growth_kib * 1000 / served)
                                  if served >= MIN_REQUESTS else None),
        "mib_per_hour": mib(growth_kib * 3600 / seconds) if seconds >= MIN_SECONDS else None,
        "max_requests": None if max_requests >= NEVER else max_requests,
        "at_recycle_mib": None,
    }
    if worker["max_requests"] and worker["mib_per_1000_requests"] is not None:
        left = max(worker["max_requests"] - now["requests"], 0)
        per_request = max(worker["mib_per_1000_requests"], 0) / 1000
        worker["at_recycle_mib"] = round(worker["now_mib"] + per_request * left, 1)
    worker["summary"] = summary(worker)
    return worker


def summary(worker):
    text = (f"pid {worker['pid']}: {worker['now_mib']} MiB (at start {worker['first_mib']},"
            f" peak {worker['peak_mib']}) after {worker['requests']} requests"
            f" in {worker['age_hours']} h")
    rates = [f"{rate:+} MiB per {unit}" for rate, unit in
             [(worker["mib_per_1000_requests"], "1000 requests"), (worker["mib_per_hour"], "hour")]
             if rate is not None]
    if rates:
        text += "; " + ", ".join(rates)
    if worker["max_requests"] is None:
        return text + "; never recycled"
    text += f"; recycled at {worker['max_requests']} requests"
    if worker["at_recycle_mib"] is not None:
        text += f" (about {worker['at_recycle_mib']} MiB then)"
    return text


def warning(worker, budget_mb):
    if not budget_mb:
        return None
    start = (f"worker {worker['pid']} holds {worker['now_mib']} MiB"
             f" after {worker['requests']} requests")
    if worker["now_mib"] > budget_mb:
        return f"{start}, over the budget of {budget_mb} MiB a worker (gunicorn_worker_memory_mb)"
    if worker["at_recycle_mib"] is not None and worker["at_recycle_mib"] > budget_mb:
        return (f"{start} and grows {worker['mib_per_1000_requests']} MiB per 1000: by its"
                f" recycle at {worker['max_requests']} requests it would hold"
                f" {worker['at_recycle_mib']} MiB,"
                f" over the budget of {budget_mb} MiB a worker (gunicorn_worker_memory_mb);"
                " lower gunicorn_max_requests or find the leak")
    rate = worker["mib_per_hour"]
    if worker["max_requests"] is None and rate and rate > 0:
        hours = (budget_mb - worker["now_mib"]) / rate
        if hours < DAY_HOURS:
            return (f"{start} and grows {rate} MiB an hour, is never recycled"
                    f" (gunicorn_max_requests 0): it passes the budget of {budget_mb} MiB a worker"
                    f" in about {hours:.1f} h")
    return None


def read_workers(path, instance, budget_mb, alive=is_gunicorn):
    name = re.compile(re.escape(instance) + r"-([0-9]+)\.jsonl\Z")
    running, exited, unreadable = [], [], []
    for entry in sorted(os.listdir(path)):
        match = name.match(entry)
        if not match:
            continue
        try:
            samples = read_samples(os.path.join(path, entry))
        except (OSError, UnicodeDecodeError):
            unreadable.append(entry)
            continue
        if not samples:
            continue
        worker = describe(int(match.group(1)), samples)
        (running if alive(worker["pid"]) else exited).append(worker)
    running.sort(key=lambda w: w["now_mib"], reverse=True)
    growths = [round(w["now_mib"] - w["first_mib"], 1) for w in exited]
    return {
        "workers": running,
        "recycled": {
            "count": len(exited),
            "median_growth_mib": statistics.median(growths) if growths else None,
            "max_growth_mib": max(growths) if growths else None,
        },
        "over_budget": [w for w in (warning(worker, budget_mb) for worker in running) if w],
        "unreadable": unreadable,
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "instance": {"type": "str", "required": True},
            "budget_mb": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    params = module.params
    if not os.path.isdir(params["path"]):
        # No worker sampled yet (or the watch is off): nothing to report, not a failure.
        module.exit_json(changed=False, workers=[], over_budget=[], unreadable=[],
                         recycled={"count": 0, "median_growth_mib": None, "max_growth_mib": None})
    result = read_workers(params["path"], params["instance"], params["budget_mb"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
