# Each worker's resident memory over its life (gunicorn_memory_watch_*), pasted into
# gunicorn.conf.py by the gunicorn role; tests/test_memory_watch.py imports this file as
# is. A worker writes one JSON line when it starts (post_worker_init) and then, after a
# request, at most every `every` seconds (post_request): {"t", "rss_kib", "requests"},
# the first line also "max_requests" (with its jitter), in
# <directory>/<instance>-<pid>.jsonl. The module worker_memory (playbooks/status.yml)
# reads them: a slow leak shows as growth per request long before MemoryHigh bites.
# A long-lived worker's file is thinned (every other line) past max_bytes; a starting
# worker deletes all but the newest `keep` files. Sampling never fails a request.
import json
import os
import threading
import time


class MemoryWatch:
    def __init__(self, directory, instance, every, keep, max_bytes=256 * 1024, clock=time.time):
        self.directory = directory
        self.every = every
        self.keep = keep
        self.max_bytes = max_bytes
        self.clock = clock
        self.path = os.path.join(directory, "%s-%d.jsonl" % (instance, os.getpid()))
        self.last = float("inf")  # off until start()
        self.busy = threading.Lock()

    def start(self, max_requests, log):
        try:
            os.makedirs(self.directory, mode=0o750, exist_ok=True)
            self.prune()
            self.write({"max_requests": max_requests, "requests": 0})
        except OSError as error:
            log.warning("memory watch is off for this worker: %s", error)
            self.last = float("inf")

    def after_request(self, requests, log):
        # One thread samples; the others (gthread) go on at once.
        if self.clock() - self.last < self.every or not self.busy.acquire(blocking=False):
            return
        try:
            self.write({"requests": requests})
        except OSError as error:
            log.warning("memory watch: %s", error)
            self.last = float("inf")
        finally:
            self.busy.release()

    def write(self, fields):
        now = self.clock()
        line = json.dumps({"t": round(now, 1), "rss_kib": resident_kib()} | fields)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            size = handle.tell()
        self.last = now
        if size > self.max_bytes:
            self.thin()

    def thin(self):
        with open(self.path, encoding="utf-8") as handle:
            lines = handle.readlines()
        kept = lines[:1] + lines[1:-1:2] + lines[-1:]
        partial = self.path + ".part"
        with open(partial, "w", encoding="utf-8") as handle:
            handle.writelines(kept)
        os.replace(partial, self.path)

    def prune(self):
        entries = []
        for name in os.listdir(self.directory):
            if name.endswith(".jsonl"):
                try:
                    entries.append((os.stat(os.path.join(self.directory, name)).st_mtime, name))
                except FileNotFoundError:
                    pass
        for _mtime, name in sorted(entries, reverse=True)[max(self.keep - 1, 0):]:
            try:
                os.unlink(os.path.join(self.directory, name))
            except FileNotFoundError:
                pass  # another worker starting at the same time pruned it


def resident_kib():
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024
