"""Top-level pages and the endpoints the deploy and its benchmarks exercise."""

import hashlib
import tempfile
import time
from datetime import UTC, datetime

from flask import Blueprint, current_app, render_template, request

from .db import get_db
from .extensions import cache

bp = Blueprint("main", __name__)

# Stands in for a database or HTTP call: the worker waits without using the CPU.
IO_WAIT_SECONDS = 0.05
# Sized for roughly 10 ms of pure-Python work, which holds the GIL throughout.
CPU_PRIME_LIMIT = 8_000
# What /upload holds in memory at once, whatever the size of the body.
UPLOAD_CHUNK_BYTES = 1024 * 1024


def count_primes(limit: int) -> int:
    return sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))


def build_report() -> dict:
    rows = get_db().execute("SELECT price_cents FROM items").fetchall()
    prices = [row["price_cents"] for row in rows]
    return {
        "items": len(prices),
        "average_cents": sum(prices) // len(prices),
        "primes": count_primes(CPU_PRIME_LIMIT),
    }


@bp.get("/")
def index():
    return render_template("index.html")


@bp.get("/healthz")
def healthz():
    body = {"status": "ok", "release": current_app.config["RELEASE_ID"]}
    # A cached answer would hide which release is really serving.
    return body, 200, {"Cache-Control": "no-store"}


@bp.get("/io")
def io_bound():
    started = time.perf_counter()
    time.sleep(IO_WAIT_SECONDS)
    return {"waited_ms": round((time.perf_counter() - started) * 1000, 1)}


@bp.get("/cpu")
def cpu_bound():
    return {"limit": CPU_PRIME_LIMIT, "primes": count_primes(CPU_PRIME_LIMIT)}


@bp.get("/report")
# SimpleCache lives in each worker process: every worker computes the page once a minute.
@cache.cached(timeout=60)
def report():
    return render_template("report.html", report=build_report(), generated_at=datetime.now(UTC))


@bp.get("/items")
def items():
    rows = get_db().execute("SELECT sku, name, price_cents FROM items ORDER BY sku")
    return {"items": [dict(row) for row in rows]}


@bp.post("/upload")
def upload():
    """Store the raw body in a temporary file, chunk by chunk, and say what arrived.

    ``request.stream``, never ``request.data``, ``get_data()`` or ``form``: those read
    the whole body into the worker's memory. The file has no name (O_TMPFILE where the
    system has it) and is gone when closed, so nothing stays behind, even if the worker
    dies mid-upload.
    """
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile(prefix="gantry-upload-") as spool:
        while chunk := request.stream.read(UPLOAD_CHUNK_BYTES):
            spool.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}
