"""tests/browser_check.py, the headless Chromium check molecule's verify runs on the
deployed pages: it must fail on what a visitor would see broken, and pass otherwise.
Pages come from a local HTTP server, their assets from a bucket in moto behind the
check's CDN stand-in."""

import json
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from s3_helpers import KEY_ID, SECRET, bucket, clean_env, moto, s3  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]
CDN = "cdn.gantry.test"
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="https://cdn.gantry.test/static/css/app.css">
<script src="https://cdn.gantry.test/static/js/app.js" defer></script></head>
<body><img src="https://cdn.gantry.test/static/img/dot%20one.svg" alt="dot"></body></html>
"""
CSS = "body { max-width: 40rem; }\n"
SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
       '<circle cx="4" cy="4" r="4"/></svg>')


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        """Keep test output quiet."""


@pytest.fixture
def site(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(PAGE)
    (tmp_path / "site" / "favicon.ico").write_bytes(b"")
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 partial(Quiet, directory=str(tmp_path / "site")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def upload(s3, bucket, skip=(), **overrides):  # noqa: F811 - the fixtures' names
    objects = {"static/css/app.css": (CSS, "text/css"),
               "static/js/app.js": ("document.body.dataset.ran = 'yes';\n", "text/javascript"),
               "static/img/dot one.svg": (SVG, "image/svg+xml")} | overrides
    for key, (text, kind) in objects.items():
        if key not in skip:
            s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType=kind)


def check(tmp_path, moto, bucket, page, *style):  # noqa: F811 - the fixtures' names
    args = [sys.executable, str(ROOT / "tests" / "browser_check.py"), "--page", page,
            "--screenshots", str(tmp_path / "shots"), "--cdn-domain", CDN,
            "--bucket", bucket, "--endpoint-url", moto.endpoint]
    for item in style:
        args += ["--style", item]
    env = clean_env(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=180)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)["pages"][0]


def test_a_page_whose_assets_load_passes_with_a_screenshot(tmp_path, moto, s3, bucket, site):  # noqa: F811
    upload(s3, bucket)
    rc, page = check(tmp_path, moto, bucket, site, "body|max-width|640px")
    assert rc == 0, page
    assert set(page["assets"].values()) == {200} and len(page["assets"]) == 3
    assert page["styles"] == {"body max-width": "640px"}
    assert Path(page["screenshot"]).stat().st_size > 0


def test_a_missing_asset_fails_naming_it(tmp_path, moto, s3, bucket, site):  # noqa: F811
    upload(s3, bucket, skip=["static/img/dot one.svg"])
    rc, page = check(tmp_path, moto, bucket, site)
    assert rc == 1
    assert "https://cdn.gantry.test/static/img/dot%20one.svg answered 404" in page["problems"]
    assert any("console:" in problem for problem in page["problems"])


def test_a_stylesheet_that_does_not_apply_fails(tmp_path, moto, s3, bucket, site):  # noqa: F811
    # Fetched with 200, but not what the page expects of it.
    upload(s3, bucket, **{"static/css/app.css": ("body { max-width: 10rem; }\n", "text/css")})
    rc, page = check(tmp_path, moto, bucket, site, "body|max-width|640px")
    assert rc == 1
    assert page["problems"] == ["body max-width is '160px', not '640px'"]


def test_a_script_error_fails(tmp_path, moto, s3, bucket, site):  # noqa: F811
    upload(s3, bucket, **{"static/js/app.js": ("no_such_function();\n", "text/javascript")})
    rc, page = check(tmp_path, moto, bucket, site)
    assert rc == 1
    assert any("no_such_function" in error for error in page["console_errors"]), page
