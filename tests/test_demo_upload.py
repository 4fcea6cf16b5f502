"""The demo app's POST /upload: a large body is streamed to disk, never held in memory.

molecule/default/tasks/upload.yml proves the same through nginx and Gunicorn on the
hosts; here the app alone, with Flask's test client.
"""

import hashlib
import io
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

import pytest

DEMO_DIR = Path(__file__).resolve().parents[1] / "examples" / "flask_demo"
sys.path.insert(0, str(DEMO_DIR))

import gantry_demo  # noqa: E402
from gantry_demo import settings, views  # noqa: E402

MIB = 1024 * 1024
# The size the molecule proof uploads through nginx: Flask must not refuse it either.
BODY_BYTES = 200 * MIB


class GeneratedBody(io.RawIOBase):
    """``size`` bytes made on the fly from a random block, recording each read's size.

    The body never exists in memory as a whole, so any large allocation the test sees is
    the app's. Seekable because Werkzeug's test client measures the stream that way.
    """

    block = os.urandom(MIB + 17)  # not a multiple of the app's chunk

    def __init__(self, size: int):
        self.size = size
        self.position = 0
        self.read_sizes: list[int] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, min(self.size, base + offset))
        return self.position

    def read(self, size: int = -1) -> bytes:
        self.read_sizes.append(size)
        if size < 0:
            size = self.size - self.position
        start = self.position % len(self.block)
        size = min(size, self.size - self.position, len(self.block) - start)
        self.position += size
        return self.block[start : start + size]

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def expected_digest(size: int) -> str:
    digest = hashlib.sha256()
    replay = GeneratedBody(size)
    while chunk := replay.read(MIB):
        digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
def client(monkeypatch, tmp_path):
    """The demo app with no settings from the caller's environment, its temp dir empty."""
    for key in (*settings.STRING_KEYS, *settings.BOOL_KEYS, "GANTRY_RELEASE_ID"):
        monkeypatch.delenv(key, raising=False)
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool_dir))
    app = gantry_demo.create_app({"TESTING": True})
    client = app.test_client()
    client.spool_dir = spool_dir
    return client


def test_large_body_streams_in_bounded_memory(client):
    body = GeneratedBody(BODY_BYTES)
    tracemalloc.start()
    try:
        response = client.post(
            "/upload", input_stream=body, content_type="application/octet-stream"
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 200, response.data[:500]
    assert response.get_json() == {"bytes": BODY_BYTES, "sha256": expected_digest(BODY_BYTES)}
    # Read a chunk at a time (never read() of everything, as get_data() would).
    assert body.read_sizes and all(0 < size <= views.UPLOAD_CHUNK_BYTES for size in body.read_sizes)
    # A chunk or two in flight, the answer, the framework: far below the 200 MiB body.
    assert peak < 8 * MIB, f"peak Python allocation {peak / MIB:.1f} MiB"


def test_nothing_stays_in_the_temp_dir(client):
    response = client.post("/upload", data=b"x" * (3 * MIB + 5))
    assert response.get_json() == {
        "bytes": 3 * MIB + 5,
        "sha256": hashlib.sha256(b"x" * (3 * MIB + 5)).hexdigest(),
    }
    assert list(client.spool_dir.iterdir()) == []


def test_body_without_content_length_from_a_terminating_server(client):
    # A chunked body has no length; Gunicorn ends the stream itself and says so with
    # wsgi.input_terminated, and the app reads to that end.
    response = client.post(
        "/upload",
        input_stream=GeneratedBody(5 * MIB),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.get_json() == {"bytes": 5 * MIB, "sha256": expected_digest(5 * MIB)}


def test_upload_is_post_only_and_takes_an_empty_body(client):
    assert client.get("/upload").status_code == 405
    empty = client.post("/upload", data=b"")
    assert empty.get_json() == {"bytes": 0, "sha256": hashlib.sha256(b"").hexdigest()}
