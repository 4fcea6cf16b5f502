"""Load pages in headless Chromium and report what a visitor's browser got.

For each page: every stylesheet, script and image the page references and whether the
asset host answered 200 for it, a computed style of the page (the stylesheet applied, not
only fetched), the console's errors, and a screenshot. Prints one JSON object; exits 1
when a page failed to load, an asset answered anything but 200, a style differs or the
console has an error.

With --cdn-domain and --bucket, the asset host a page names (the CDN domain, as
Flask-S3's url_for renders it) is served by a stand-in for the CDN: a TLS server on
127.0.0.1 that reads each requested key from the bucket with the S3 credentials of the
environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; --endpoint-url for a local S3),
as a CDN with access to a private bucket does. Chromium resolves the CDN domain to it
(--host-resolver-rules), so nothing leaves the machine. Assets on other hosts are asked
for again with a plain GET.

    python tests/browser_check.py --page https://127.0.0.1:18181/ --page .../catalog/ \\
        --style "body|max-width|640px" --screenshots DIR \\
        [--cdn-domain cdn.example.test --bucket NAME --endpoint-url http://127.0.0.1:18191]

Needs Debian's chromium and chromium-driver, and selenium (requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

# What the page asks for, as the browser resolved it (absolute URLs).
ASSETS_JS = """
return Array.from(document.querySelectorAll(
    'link[rel~="stylesheet"][href], link[rel~="icon"][href], script[src], img[src]'))
  .map(e => e.href || e.src);
"""
STYLE_JS = """
const element = document.querySelector(arguments[0]);
return element ? getComputedStyle(element).getPropertyValue(arguments[1]) : null;
"""


class CdnStandIn:
    """TLS on 127.0.0.1 serving the bucket's keys; records (path, status) per request."""

    def __init__(self, bucket, endpoint_url):
        import boto3
        from botocore.exceptions import ClientError

        s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
        self.requests = []
        self.workdir = tempfile.TemporaryDirectory(prefix="gantry-browser-cdn-")
        cert, key = Path(self.workdir.name) / "cdn.crt", Path(self.workdir.name) / "cdn.key"
        # The browser is told to accept any certificate; this one only has to exist.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=cdn stand-in", "-days", "1",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
                """Quiet: the requests are reported in the JSON."""

            def do_GET(self):  # noqa: N802 - the stdlib's name
                headers, body = {}, b""
                try:
                    found = s3.get_object(Bucket=bucket, Key=unquote(urlsplit(self.path).path[1:]))
                    status, body = 200, found["Body"].read()
                    headers = {"Content-Type": found.get("ContentType"),
                               "Cache-Control": found.get("CacheControl"),
                               "Content-Encoding": found.get("ContentEncoding")}
                except ClientError as exc:
                    status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
                owner.requests.append({"path": self.path, "status": status})
                self.send_response(status)
                for name, value in headers.items():
                    if value:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.workdir.cleanup()


def open_browser(resolver_rules):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
                 "--disable-dev-shm-usage", "--window-size=1024,768"):
        options.add_argument(flag)
    if resolver_rules:
        options.add_argument(f"--host-resolver-rules={resolver_rules}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(60)
    return driver


def asset_status(url, cdn, cdn_domain):
    """The status the asset host gave the browser for url, or gives a plain GET."""
    parts = urlsplit(url)
    if cdn is not None and parts.hostname == cdn_domain:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        seen = [r["status"] for r in cdn.requests if r["path"] == path]
        if seen:
            return seen[-1]
        # Not fetched yet (a browser fetches the icon when it likes): ask the stand-in.
        url = f"https://127.0.0.1:{cdn.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=30, context=ssl._create_unverified_context()) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def check_page(driver, url, styles, screenshots, cdn, cdn_domain):
    driver.get_log("browser")  # what an earlier page logged is not this page's
    driver.get(url)
    assets = driver.execute_script(ASSETS_JS)
    problems = []
    statuses = {asset: asset_status(urljoin(url, asset), cdn, cdn_domain) for asset in assets}
    problems += [f"{asset} answered {status}" for asset, status in statuses.items()
                 if status != 200]
    computed = {}
    for selector, prop, expected in styles:
        value = driver.execute_script(STYLE_JS, selector, prop)
        computed[f"{selector} {prop}"] = value
        if value != expected:
            problems.append(f"{selector} {prop} is {value!r}, not {expected!r}")
    errors = [entry["message"] for entry in driver.get_log("browser")
              if entry.get("level") == "SEVERE"]
    problems += [f"console: {message}" for message in errors]
    parts = urlsplit(url)
    shot = Path(screenshots) / "{}_{}_{}.png".format(
        parts.hostname, parts.port or "", parts.path.strip("/").replace("/", "-") or "index")
    driver.save_screenshot(str(shot))
    return {"url": url, "assets": statuses, "styles": computed, "console_errors": errors,
            "screenshot": str(shot), "problems": problems}


def parse_style(text):
    selector, prop, expected = text.split("|", 2)
    return selector, prop, expected


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", action="append", required=True, help="URL to load")
    parser.add_argument("--style", action="append", type=parse_style, default=[],
                        help='"selector|property|value" the page must compute')
    parser.add_argument("--screenshots", required=True, help="directory for the screenshots")
    parser.add_argument("--cdn-domain", help="asset host to serve from --bucket")
    parser.add_argument("--bucket", help="the bucket behind --cdn-domain")
    parser.add_argument("--endpoint-url", help="S3 endpoint of --bucket (default: AWS's)")
    args = parser.parse_args(argv)
    if bool(args.cdn_domain) != bool(args.bucket):
        parser.error("--cdn-domain and --bucket go together")
    Path(args.screenshots).mkdir(parents=True, exist_ok=True)

    cdn = CdnStandIn(args.bucket, args.endpoint_url) if args.cdn_domain else None
    rules = f"MAP {args.cdn_domain} 127.0.0.1:{cdn.port}" if cdn else None
    driver = open_browser(rules)
    try:
        pages = [check_page(driver, page, args.style, args.screenshots, cdn, args.cdn_domain)
                 for page in args.page]
    finally:
        driver.quit()
        if cdn:
            cdn.close()
    print(json.dumps({"pages": pages}, indent=2, ensure_ascii=False))
    return 1 if any(page["problems"] for page in pages) else 0


if __name__ == "__main__":
    sys.exit(main())
