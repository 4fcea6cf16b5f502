# Sampled request profiling (gunicorn_profiling_*), pasted into gunicorn.conf.py by the
# gunicorn role when it is on; tests/test_request_profiler.py imports this file as is.
# Each worker wraps the app (post_worker_init): a request picked at random (rate) runs
# under cProfile, and its profile is kept when the request took at least min_ms, as
# <directory>/<ms since epoch>-<pid>-<method>-<path>-<ms>ms.prof (pstats' format). The
# directory is kept under max_bytes by deleting the oldest profiles. One request per
# worker is profiled at a time: Python 3.12+ allows one profiler per process, whose
# profile then also holds what the worker's other threads ran meanwhile.
import cProfile
import os
import random
import re
import threading
import time


class RequestProfiler:
    # Pruning lists the directory: at most this often, or after this many bytes written.
    PRUNE_SECONDS = 5.0
    PRUNE_BYTES = 1024 * 1024

    def __init__(self, app, directory, rate, min_ms, max_bytes, clock=time.monotonic):
        self.app = app
        self.directory = directory
        self.rate = rate
        self.min_ms = min_ms
        self.max_bytes = max_bytes
        self.clock = clock
        self.busy = threading.Lock()
        self.written_since_prune = 0
        self.last_prune = clock()
        os.makedirs(directory, mode=0o750, exist_ok=True)

    def __call__(self, environ, start_response):
        if random.random() >= self.rate or not self.busy.acquire(blocking=False):
            return self.app(environ, start_response)
        try:
            profile = cProfile.Profile()
            started = self.clock()
            try:
                profile.enable()
            except ValueError:
                # Another profiler runs in this process (the app's own, say).
                return self.app(environ, start_response)
            try:
                return self.app(environ, start_response)
            finally:
                profile.disable()
                elapsed_ms = (self.clock() - started) * 1000
                if elapsed_ms >= self.min_ms:
                    self.keep(profile, environ, elapsed_ms)
        finally:
            self.busy.release()

    def keep(self, profile, environ, elapsed_ms):
        request_path = environ.get("PATH_INFO", "/")
        slug = re.sub(r"[^A-Za-z0-9]+", "_", request_path).strip("_")[:60] or "root"
        name = "%d-%d-%s-%s-%dms.prof" % (
            time.time() * 1000, os.getpid(), environ.get("REQUEST_METHOD", "GET"), slug,
            round(elapsed_ms))
        path = os.path.join(self.directory, name)
        try:
            # Under a name the fetch skips, then renamed: a profile is whole or absent.
            profile.dump_stats(path + ".part")
            os.replace(path + ".part", path)
            self.written_since_prune += os.path.getsize(path)
        except OSError:
            return
        if (self.written_since_prune >= self.PRUNE_BYTES
                or self.clock() - self.last_prune >= self.PRUNE_SECONDS):
            self.prune()

    def prune(self):
        self.written_since_prune = 0
        self.last_prune = self.clock()
        profiles = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                try:
                    if entry.name.endswith(".prof"):
                        stat = entry.stat()
                        profiles.append((stat.st_mtime, entry.path, stat.st_size))
                except OSError:
                    continue
        total = sum(size for _mtime, _path, size in profiles)
        for _mtime, path, size in sorted(profiles):
            if total <= self.max_bytes:
                break
            try:
                os.remove(path)
            except OSError:
                pass
            total -= size
