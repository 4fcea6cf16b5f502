"""A bare WSGI app for bench/serve/run.py: the "app we did not write" next to the demo.

No framework, no dependencies, so the same three routes measure Gunicorn's worker
models with as little of the app in the way as possible:

- ``/``     no work at all: the ceiling of the server on this host;
- ``/io``   waits 50 ms without using the CPU (a database or HTTP call);
- ``/cpu``  about 10 ms of pure-Python work, holding the GIL throughout.

The waits and the work are the demo app's (examples/flask_demo/gantry_demo/views.py),
so the two apps differ only in what Flask costs per request.

    gunicorn --pythonpath bench/serve bench_app:app
"""

import json
import time

IO_WAIT_SECONDS = 0.05
CPU_PRIME_LIMIT = 8_000


def count_primes(limit: int) -> int:
    return sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))


def _noop() -> dict:
    return {"status": "ok"}


def _io() -> dict:
    started = time.perf_counter()
    time.sleep(IO_WAIT_SECONDS)
    return {"waited_ms": round((time.perf_counter() - started) * 1000, 1)}


def _cpu() -> dict:
    return {"limit": CPU_PRIME_LIMIT, "primes": count_primes(CPU_PRIME_LIMIT)}


ROUTES = {"/": _noop, "/io": _io, "/cpu": _cpu}


def app(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO", "/"))
    if handler is None:
        body, status = b'{"error": "not found"}', "404 Not Found"
    else:
        body, status = json.dumps(handler()).encode(), "200 OK"
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
