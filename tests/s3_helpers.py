"""Shared pieces of the s3_static tests: a moto S3 server on 127.0.0.1, a fault-injecting
proxy in front of it, a runner that executes the module the way Ansible does (one JSON
argument file, one JSON answer on stdout), and tree builders."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(REPO, "plugins", "modules", "s3_static_sync.py")
# This checkout as the collection gantry.deploy (tests/conftest.py links it).
COLLECTIONS = os.path.join(REPO, ".collections")
ROLE = os.path.join(REPO, "roles", "s3_static")
FOLDERS_SCRIPT = os.path.join(ROLE, "files", "flask_static_folders.py")
PYTHON = sys.executable

KEY_ID = "testing"
SECRET = "testing-secret"

# Runs the module file as __main__ with our module_utils importable, like AnsiballZ.
RUNNER = (
    "import sys, runpy;"
    "sys.path.insert(0, sys.argv.pop(1));"
    "runpy.run_path(sys.argv.pop(1), run_name='__main__')"
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra):
    """Environment without any real AWS configuration of the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1",
    )
    env.update(extra)
    return env


class MotoServer:
    """moto in server mode, in a child process so it has its own interpreter."""

    def __init__(self, env=None):
        self.port = free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=clean_env(**(env or {})),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        "moto server exited with %s" % self.proc.returncode
                    ) from None
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("moto server did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def s3_client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


@pytest.fixture(scope="session")
def moto():
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def s3(moto):
    return s3_client(moto.endpoint)


@pytest.fixture
def bucket(s3):
    name = "gantry-%s" % uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    return name


class FaultProxy:
    """HTTP proxy on 127.0.0.1 in front of moto. ``decide(method, path, count)`` sees
    every request (count = how many requests with that method and path came before) and
    returns None to forward it or an (status, code) pair to answer with an S3 error."""

    def __init__(self, upstream_port, decide):
        self.decide = decide
        self.lock = threading.Lock()
        self.counts = {}
        self.log = []
        self.copies = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    seen = (self.command, self.path.split("?")[0])
                    n = proxy.counts.get(seen, 0)
                    proxy.counts[seen] = n + 1
                    fault = proxy.decide(self.command, self.path, n)
                    proxy.log.append((self.command, self.path, fault))
                    if self.headers.get("x-amz-copy-source"):
                        proxy.copies[self.path] = True
                if fault:
                    status, code = fault
                    payload = (
                        "<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code>"
                        "<Message>injected by test</Message></Error>" % code
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def faults(self):
        return [entry for entry in self.log if entry[2]]


def module_args(endpoint, bucket, folders, **kw):
    args = {
        "bucket": bucket,
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "folders": folders,
        "workers": 8,
    }
    args.update(kw)
    return args


def start_module(args, tmp_path, check=False, diff=False):
    """Start the module in a child process; return (Popen, path of the argument file)."""
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    argfile = tmp_path / ("args-%s.json" % uuid.uuid4().hex[:8])
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
    proc = subprocess.Popen(
        [PYTHON, "-c", RUNNER, COLLECTIONS, MODULE, str(argfile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        text=True,
    )
    return proc


def run_module(args, tmp_path, check=False, diff=False, expect_failure=False):
    proc = start_module(args, tmp_path, check=check, diff=diff)
    out, err = proc.communicate(timeout=120)
    try:
        result = json.loads(out)
    except ValueError:
        raise AssertionError(
            "module printed no JSON (rc %s)\n%s\n%s" % (proc.returncode, out, err)
        ) from None
    failed = bool(result.get("failed"))
    assert failed == expect_failure, json.dumps(result, indent=1)[:4000] + err[-2000:]
    return result


def write_tree(root, files):
    """files: {relative path: bytes or str}."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return root


def list_keys(s3, bucket, prefix=""):
    keys = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            keys[obj["Key"]] = obj
    return keys


def body(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def touch_all(root, when):
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), (when, when))
