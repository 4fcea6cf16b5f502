"""Fetch pages the way a browser starts to, until a flag file goes away: each round
loads every page once on a new connection (no retry, no keep-alive to hide a closed
socket), takes the asset URLs on the CDN domain from its HTML and checks that each
one's key is in the bucket. Prints a JSON report: pages fetched, failures, the asset
versions seen, and every page whose assets were missing.

Asset keys are checked against the bucket (HEAD with the S3 credentials of the
environment), not fetched: the CDN domain is not reachable from here, and a key that
exists is what a CDN with origin access serves.
"""

import argparse
import http.client
import json
import os
import re
import ssl
import time
from urllib.parse import unquote, urlsplit

import boto3
from botocore.exceptions import ClientError


def fetch(url, context):
    parts = urlsplit(url)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=20, context=context)
    try:
        conn.request("GET", parts.path or "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", action="append", required=True)
    parser.add_argument("--cdn-domain", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--flag", required=True, help="run while this file exists")
    parser.add_argument("--pause", type=float, default=0.2)
    args = parser.parse_args()

    s3 = boto3.client("s3", endpoint_url=args.endpoint_url, region_name="us-east-1")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    asset_re = re.compile(r"//%s/([^\"'?#]+)" % re.escape(args.cdn_domain))
    known = {}
    report = {"pages": 0, "page_failures": [], "assets_checked": 0, "missing": [], "versions": []}
    versions = set()

    def exists(key):
        if key not in known:
            try:
                s3.head_object(Bucket=args.bucket, Key=key)
                known[key] = True
            except ClientError:
                # A missing key is not remembered: it must be there at the next look too.
                return False
        return known[key]

    while os.path.exists(args.flag):
        for page in args.page:
            try:
                status, html = fetch(page, context)
            except (OSError, http.client.HTTPException) as exc:
                report["page_failures"].append("%s: %s" % (page, exc))
                continue
            report["pages"] += 1
            if status != 200:
                report["page_failures"].append("%s: HTTP %d" % (page, status))
                continue
            keys = sorted({unquote(k) for k in asset_re.findall(html)})
            if not keys:
                report["page_failures"].append("%s: no asset on %s" % (page, args.cdn_domain))
            for key in keys:
                report["assets_checked"] += 1
                versions.add("/".join(key.split("/")[:2]))
                if not exists(key):
                    report["missing"].append("%s at %s" % (key, page))
        time.sleep(args.pause)
    report["versions"] = sorted(versions)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
