"""s3_static_sync against a real S3 API: moto in server mode on 127.0.0.1."""

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import brotli
import pytest
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import s3_helpers  # noqa: E402
from s3_helpers import (  # noqa: E402
    FOLDERS_SCRIPT,
    PYTHON,
    FaultProxy,
    MotoServer,
    body,
    clean_env,
    list_keys,
    module_args,
    run_module,
    start_module,
    touch_all,
    write_tree,
)

# Fixtures shared with the other s3 test files (no conftest.py: tests/ is shared).
moto = s3_helpers.moto
s3 = s3_helpers.s3
bucket = s3_helpers.bucket

MANIFEST = ".gantry-static-manifest.json"


def list_folders(app, cwd=None, **env):
    """What flask_static_folders.py prints for ``app``, parsed."""
    proc = subprocess.run(
        [PYTHON, FOLDERS_SCRIPT, app],
        env=clean_env(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


@pytest.fixture
def site(tmp_path):
    """An app static folder and a blueprint static folder."""
    app = write_tree(
        tmp_path / "app" / "static",
        {
            "css/app.css": "body { color: #333 }\n" * 40,
            "css/print.css": "@media print {}\n",
            "js/app.3f2a9b1c.js": "console.log('hashed');\n",
            "img/logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
            "fonts/sub/dir/deep.woff2": b"wOF2" + b"\0" * 64,
            "unicode/café menu.txt": "menu ☕\n",
            ".DS_Store": b"junk",
        },
    )
    shop = write_tree(tmp_path / "app" / "shop_static", {"shop.css": ".shop{}\n"})
    return {
        "root": tmp_path / "app",
        "folders": [
            {"path": str(app), "url_path": "/static"},
            {"path": str(shop), "url_path": "/shop/static"},
        ],
    }


def manifest(s3, bucket, prefix="pfx"):
    return json.loads(body(s3, bucket, "%s/%s" % (prefix, MANIFEST)))


def test_first_upload_layout_headers_and_no_acl(moto, s3, bucket, site, tmp_path):
    args = module_args(moto.endpoint, bucket, site["folders"], prefix="/pfx/", release="r1")
    result = run_module(args, tmp_path)
    assert result["changed"] and result["uploaded"] == 7 and result["files"] == 7
    keys = set(list_keys(s3, bucket))
    assert keys == {
        "pfx/" + MANIFEST,
        "pfx/static/css/app.css",
        "pfx/static/css/print.css",
        "pfx/static/js/app.3f2a9b1c.js",
        "pfx/static/img/logo.png",
        "pfx/static/fonts/sub/dir/deep.woff2",
        "pfx/static/unicode/café menu.txt",
        "pfx/shop/static/shop.css",
    }
    css = s3.head_object(Bucket=bucket, Key="pfx/static/css/app.css")
    assert css["ContentType"] == "text/css; charset=utf-8"
    assert css["CacheControl"] == "public, max-age=300"
    assert "ContentEncoding" not in css
    digest = hashlib.sha256((site["root"] / "static/css/app.css").read_bytes()).hexdigest()
    assert css["Metadata"]["gantry-sha256"] == digest
    js = s3.head_object(Bucket=bucket, Key="pfx/static/js/app.3f2a9b1c.js")
    assert js["CacheControl"] == "public, max-age=31536000, immutable"
    assert (
        s3.head_object(Bucket=bucket, Key="pfx/static/fonts/sub/dir/deep.woff2")["ContentType"]
        == "font/woff2"
    )
    assert body(s3, bucket, "pfx/static/unicode/café menu.txt") == "menu ☕\n".encode()
    grants = s3.get_object_acl(Bucket=bucket, Key="pfx/static/css/app.css")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    assert result["env"]["FLASKS3_PREFIX"] == "pfx"
    assert result["env"]["FLASKS3_BUCKET_NAME"] == bucket
    assert result["changed_urls"] == []
    assert [r["id"] for r in manifest(s3, bucket)["releases"]] == ["r1"]


def test_check_mode_and_diff_write_nothing(moto, s3, bucket, site, tmp_path):
    args = module_args(moto.endpoint, bucket, site["folders"], prefix="pfx")
    result = run_module(args, tmp_path, check=True, diff=True)
    assert result["changed"] and result["uploaded"] == 7
    assert "pfx/static/css/app.css (absent)" in result["diff"]["before"]
    assert "pfx/static/css/app.css sha256=" in result["diff"]["after"]
    assert list_keys(s3, bucket) == {}


def test_mtime_only_change_uploads_nothing(moto, s3, bucket, site, tmp_path):
    args = module_args(moto.endpoint, bucket, site["folders"], prefix="pfx", release="r1")
    run_module(args, tmp_path)
    before = list_keys(s3, bucket)
    touch_all(site["root"], time.time() + 3600)
    result = run_module(args, tmp_path)
    assert not result["changed"]
    assert (result["uploaded"], result["headers_updated"], result["unchanged"]) == (0, 0, 7)
    after = list_keys(s3, bucket)
    assert {k: v["LastModified"] for k, v in after.items()} == {
        k: v["LastModified"] for k, v in before.items()
    }


def test_same_size_edit_uploads_and_is_listed_for_purge(moto, s3, bucket, site, tmp_path):
    args = module_args(
        moto.endpoint,
        bucket,
        site["folders"],
        prefix="pfx",
        release="r1",
        cdn_domain="cdn.example.com",
    )
    run_module(args, tmp_path)
    print_css = site["root"] / "static/css/print.css"
    original = print_css.read_bytes()
    print_css.write_bytes(original.replace(b"print", b"PRINT"))
    result = run_module(dict(args, release="r2"), tmp_path)
    assert result["uploaded"] == 1 and result["unchanged"] == 6
    assert result["changed_urls"] == ["https://cdn.example.com/pfx/static/css/print.css"]
    assert body(s3, bucket, "pfx/static/css/print.css") == original.replace(b"print", b"PRINT")


def test_header_only_change_copies_in_place(moto, s3, bucket, site, tmp_path):
    args = module_args(moto.endpoint, bucket, site["folders"], prefix="pfx", release="r1")
    run_module(args, tmp_path)
    etag = s3.head_object(Bucket=bucket, Key="pfx/static/css/app.css")["ETag"]
    rules = [
        {"pattern": "static/css/*.css", "cache_control": "public, max-age=60"},
        {"pattern": "app.css", "metadata": {"owner": "web"}},
    ]

    def no_object_bodies(method, path, n):
        return None

    with FaultProxy(moto.port, no_object_bodies) as proxy:
        result = run_module(dict(args, endpoint_url=proxy.endpoint, header_rules=rules), tmp_path)
    assert (result["uploaded"], result["headers_updated"], result["uploaded_bytes"]) == (0, 2, 0)
    puts = [p for m, p, _ in proxy.log if m == "PUT" and MANIFEST not in p]
    assert all(proxy.copies.get(p) for p in puts), proxy.log
    head = s3.head_object(Bucket=bucket, Key="pfx/static/css/app.css")
    assert head["CacheControl"] == "public, max-age=60"
    assert head["Metadata"]["owner"] == "web"
    assert head["ContentType"] == "text/css; charset=utf-8"
    assert head["ETag"] == etag
    assert len(result["changed_urls"]) == 2
    again = run_module(dict(args, header_rules=rules), tmp_path)
    assert not again["changed"]


def test_unversioned_run_trusts_the_manifest_unless_it_must_list(
    moto, s3, bucket, site, tmp_path
):
    args = module_args(moto.endpoint, bucket, site["folders"], prefix="pfx", release="r1")
    run_module(args, tmp_path)

    def forward(method, path, n):
        return None

    def listed(proxy):
        return [p for m, p, _ in proxy.log if m == "GET" and "list-type=2" in p]

    def run_through_proxy(extra):
        with FaultProxy(moto.port, forward) as proxy:
            result = run_module(dict(args, endpoint_url=proxy.endpoint, **extra), tmp_path)
        return result, listed(proxy)

    # Every key recorded as written: a re-run reads the manifest and lists nothing, so an
    # object deleted behind the module's back goes unnoticed; verify_objects finds it.
    rerun, listings = run_through_proxy({"release": "r2"})
    assert (rerun["uploaded"], rerun["unchanged"], listings) == (0, 7, [])
    s3.delete_object(Bucket=bucket, Key="pfx/static/css/app.css")
    trusted, listings = run_through_proxy({"release": "r3"})
    assert (trusted["uploaded"], trusted["unchanged"], listings) == (0, 7, [])
    assert "pfx/static/css/app.css" not in list_keys(s3, bucket)
    repaired, listings = run_through_proxy({"release": "r4", "verify_objects": True})
    assert (repaired["uploaded"], repaired["unchanged"]) == (1, 6) and listings
    assert "pfx/static/css/app.css" in list_keys(s3, bucket)

    # A header change is a copy of the object onto itself, which needs the object: the
    # run lists, and uploads the one deleted meanwhile instead of copying it.
    s3.delete_object(Bucket=bucket, Key="pfx/static/css/print.css")
    rules = [{"pattern": "static/css/*.css", "cache_control": "public, max-age=60"}]
    restyled, listings = run_through_proxy({"release": "r5", "header_rules": rules})
    assert (restyled["headers_updated"], restyled["uploaded"]) == (1, 1) and listings
    head = s3.head_object(Bucket=bucket, Key="pfx/static/css/print.css")
    assert head["CacheControl"] == "public, max-age=60"

    # A key the manifest does not record may hold another tool's object: the run lists,
    # so overwriting it counts as a change to purge.
    s3.put_object(Bucket=bucket, Key="pfx/static/css/new.css", Body=b"theirs")
    (site["root"] / "static/css/new.css").write_bytes(b"body{}")
    added, listings = run_through_proxy(
        {"release": "r6", "header_rules": rules, "cdn_domain": "cdn.example.com"}
    )
    assert added["uploaded"] == 1 and listings
    assert added["changed_urls"] == ["https://cdn.example.com/pfx/static/css/new.css"]


def test_large_file_goes_multipart(moto, s3, bucket, tmp_path):
    big = tmp_path / "big" / "static"
    big.mkdir(parents=True)
    chunk = hashlib.sha256(b"seed").digest() * 32768  # 1 MiB, not compressible to nothing
    (big / "video.mp4").write_bytes(chunk * 17)
    args = module_args(moto.endpoint, bucket, [{"path": str(big), "url_path": "/static"}])
    result = run_module(args, tmp_path)
    assert result["uploaded"] == 1 and result["uploaded_bytes"] == 17 * 1024 * 1024
    head = s3.head_object(Bucket=bucket, Key="static/video.mp4")
    assert head["ETag"].strip('"').endswith("-3")  # 3 parts of 8 MiB
    assert head["ContentType"] == "video/mp4"
    downloaded = s3.get_object(Bucket=bucket, Key="static/video.mp4")["Body"].read()
    assert downloaded == chunk * 17
    assert run_module(args, tmp_path)["unchanged"] == 1


def test_grace_period_then_deletion(moto, s3, bucket, site, tmp_path):
    args = module_args(moto.endpoint, bucket, site["folders"], prefix="pfx", keep_releases=1)
    run_module(dict(args, release="r1"), tmp_path)
    os.remove(site["root"] / "static/css/print.css")
    r2 = run_module(dict(args, release="r2"), tmp_path)
    assert r2["deleted"] == 0 and r2["kept_for_grace"] == 1
    assert "pfx/static/css/print.css" in list_keys(s3, bucket)
    preview = run_module(dict(args, release="r3"), tmp_path, check=True)
    assert preview["deleted"] == 1
    assert "pfx/static/css/print.css" in list_keys(s3, bucket)
    r3 = run_module(dict(args, release="r3"), tmp_path)
    assert r3["deleted"] == 1 and r3["releases"] == ["r3", "r2"]
    assert "pfx/static/css/print.css" not in list_keys(s3, bucket)
    assert "pfx/static/css/print.css" not in manifest(s3, bucket)["objects"]


def test_stale_objects_can_be_tagged_instead(moto, s3, bucket, site, tmp_path):
    args = module_args(
        moto.endpoint, bucket, site["folders"], prefix="pfx", keep_releases=0, stale_action="tag"
    )
    run_module(dict(args, release="r1"), tmp_path)
    os.remove(site["root"] / "static/css/print.css")
    result = run_module(dict(args, release="r2"), tmp_path)
    assert result["tagged"] == 1 and result["deleted"] == 0
    tags = s3.get_object_tagging(Bucket=bucket, Key="pfx/static/css/print.css")["TagSet"]
    assert tags == [{"Key": "gantry-stale", "Value": "true"}]
    # Bringing the file back uploads a fresh, untagged object.
    (site["root"] / "static/css/print.css").write_text("@media print {}\n")
    back = run_module(dict(args, release="r3"), tmp_path)
    assert back["uploaded"] == 1
    assert s3.get_object_tagging(Bucket=bucket, Key="pfx/static/css/print.css")["TagSet"] == []


def test_keys_outside_the_prefix_are_never_touched(moto, s3, bucket, site, tmp_path):
    foreign = ["other/static/css/app.css", "pfx-old/static/css/app.css", "pfx/static/legacy.css"]
    for key in foreign:
        s3.put_object(Bucket=bucket, Key=key, Body=b"theirs")
    args = module_args(moto.endpoint, bucket, site["folders"], prefix="pfx", keep_releases=0)
    run_module(dict(args, release="r1"), tmp_path)
    # A manifest edited to claim a key outside the prefix must not make us delete it.
    m = manifest(s3, bucket)
    m["objects"]["other/static/css/app.css"] = {"sha256": "x", "size": 6, "etag": "x"}
    s3.put_object(Bucket=bucket, Key="pfx/" + MANIFEST, Body=json.dumps(m).encode())
    os.remove(site["root"] / "static/css/print.css")
    run_module(dict(args, release="r2"), tmp_path)
    run_module(dict(args, state="absent", folders=None), tmp_path)
    assert sorted(list_keys(s3, bucket)) == sorted(foreign)
    for key in foreign:
        assert body(s3, bucket, key) == b"theirs"


def test_failed_run_checkpoints_and_rerun_completes(moto, s3, bucket, site, tmp_path):
    args = module_args(
        moto.endpoint, bucket, site["folders"], prefix="pfx", release="r1", retries=0, workers=1
    )
    object_puts = []

    def fail_after_three(method, path, n):
        if method == "PUT" and MANIFEST not in path:
            object_puts.append(path)
            if len(object_puts) > 3:
                return (500, "InternalError")
        return None

    with FaultProxy(moto.port, fail_after_three) as proxy:
        failed = run_module(dict(args, endpoint_url=proxy.endpoint), tmp_path, expect_failure=True)
    assert "4 of 7 objects failed" in failed["msg"] and "InternalError" in failed["msg"]
    done = [k for k, v in manifest(s3, bucket)["objects"].items() if not v.get("pending")]
    assert len(done) == 3
    result = run_module(args, tmp_path)
    assert result["uploaded"] == 4 and result["unchanged"] == 3
    for folder in site["folders"]:
        for dirpath, _, names in os.walk(folder["path"]):
            for name in names:
                if name.startswith("."):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), folder["path"])
                key = "pfx/%s/%s" % (folder["url_path"].strip("/"), rel)
                with open(os.path.join(dirpath, name), "rb") as fh:
                    assert body(s3, bucket, key) == fh.read()


def test_killed_run_leaves_no_untracked_objects(moto, s3, bucket, site, tmp_path):
    args = module_args(
        moto.endpoint, bucket, site["folders"], prefix="pfx", release="r1", workers=1
    )
    state = {"proc": None, "puts": 0}

    def kill_on_fourth_put(method, path, n):
        if method == "PUT" and MANIFEST not in path:
            state["puts"] += 1
            if state["puts"] == 4:
                os.kill(state["proc"].pid, signal.SIGKILL)
                return (500, "InternalError")
        return None

    with FaultProxy(moto.port, kill_on_fourth_put) as proxy:
        state["proc"] = start_module(dict(args, endpoint_url=proxy.endpoint), tmp_path)
        state["proc"].communicate(timeout=60)
    assert state["proc"].returncode == -signal.SIGKILL
    objects = manifest(s3, bucket)["objects"]
    assert len(objects) == 7 and all(v.get("pending") for v in objects.values())
    written = {k for k in list_keys(s3, bucket) if not k.endswith(MANIFEST)}
    assert len(written) == 3 and written <= set(objects)
    # The next release no longer has one of the files written by the killed run.
    os.remove(site["root"] / "static/css/app.css")
    result = run_module(dict(args, release="r2", keep_releases=0), tmp_path)
    assert result["uploaded"] == 6
    keys = set(list_keys(s3, bucket))
    assert "pfx/static/css/app.css" not in keys and len(keys) == 7


def test_throttling_is_retried(moto, s3, bucket, site, tmp_path):
    args = module_args(moto.endpoint, bucket, site["folders"], prefix="pfx", release="r1")

    def slow_down_first_put(method, path, n):
        if method == "PUT" and MANIFEST not in path and n == 0:
            return (503, "SlowDown")
        return None

    with FaultProxy(moto.port, slow_down_first_put) as proxy:
        result = run_module(dict(args, endpoint_url=proxy.endpoint), tmp_path)
    assert result["uploaded"] == 7
    assert len(proxy.faults()) == 7
    assert run_module(args, tmp_path)["unchanged"] == 7


def test_module_restarts_a_file_after_botocore_gives_up(moto, s3, bucket, site, tmp_path):
    args = module_args(
        moto.endpoint, bucket, site["folders"], prefix="pfx", release="r1", retries=1
    )

    def three_slow_downs(method, path, n):
        if method == "PUT" and path.endswith("/print.css") and n < 3:
            return (503, "SlowDown")
        return None

    with FaultProxy(moto.port, three_slow_downs) as proxy:
        result = run_module(dict(args, endpoint_url=proxy.endpoint), tmp_path)
    # retries=1 lets botocore try twice; the third and fourth tries come from the
    # module starting the file again.
    assert len(proxy.faults()) == 3 and result["uploaded"] == 7
    assert body(s3, bucket, "pfx/static/css/print.css") == b"@media print {}\n"


def test_bad_credentials_give_a_clear_error(site, tmp_path):
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        args = module_args(server.endpoint, "somebucket", site["folders"])
        result = run_module(args, tmp_path, expect_failure=True)
    finally:
        server.stop()
    assert "refused the credentials" in result["msg"]
    assert "InvalidAccessKeyId" in result["msg"]
    assert "testing-secret" not in json.dumps(result)


def test_missing_bucket_fails_or_is_created(moto, s3, site, tmp_path):
    args = module_args(moto.endpoint, "gantry-new-bucket", site["folders"])
    missing = run_module(args, tmp_path, expect_failure=True)
    assert "does not exist" in missing["msg"] and "create_bucket" in missing["msg"]
    preview = run_module(dict(args, create_bucket=True), tmp_path, check=True)
    assert preview["bucket_created"] and preview["uploaded"] == 7
    created = run_module(dict(args, create_bucket=True), tmp_path)
    assert created["bucket_created"] and created["uploaded"] == 7
    assert len(list_keys(s3, "gantry-new-bucket")) == 8


def test_gzip_only_on_bytes_we_compressed(moto, s3, bucket, tmp_path):
    root = write_tree(
        tmp_path / "z",
        {
            "app.css": "body { margin: 0 }\n" * 100,
            "tiny.css": "a{}",
            "data.json.gz": gzip.compress(b'{"a": 1}' * 100),
            "logo.png": b"\x89PNG" + b"\0" * 1000,
        },
    )
    args = module_args(
        moto.endpoint, bucket, [{"path": str(root), "url_path": "/static"}], compress="gzip"
    )
    result = run_module(args, tmp_path)
    assert result["uploaded"] == 4
    css = s3.get_object(Bucket=bucket, Key="static/app.css")
    assert css["ContentEncoding"] == "gzip" and css["ContentType"] == "text/css; charset=utf-8"
    assert gzip.decompress(css["Body"].read()) == b"body { margin: 0 }\n" * 100
    for key in ("static/tiny.css", "static/data.json.gz", "static/logo.png"):
        assert "ContentEncoding" not in s3.head_object(Bucket=bucket, Key=key), key
    assert s3.head_object(Bucket=bucket, Key="static/data.json.gz")["ContentType"] == (
        "application/gzip"
    )
    assert not run_module(args, tmp_path)["changed"]
    plain = run_module(dict(args, compress="none"), tmp_path)
    assert plain["uploaded"] == 2  # the two text files; png and .gz were never gzip candidates
    assert "ContentEncoding" not in s3.head_object(Bucket=bucket, Key="static/app.css")


def test_brotli_only_on_bytes_we_compressed(moto, s3, bucket, tmp_path):
    text = "body { margin: 0 }\n" * 100
    root = write_tree(
        tmp_path / "br",
        {
            "app.css": text,
            "app.css.br": brotli.compress(text.encode()),
            "logo.png": b"\x89PNG" + b"\0" * 1000,
        },
    )
    args = module_args(
        moto.endpoint, bucket, [{"path": str(root), "url_path": "/static"}], compress="brotli"
    )
    assert run_module(args, tmp_path)["uploaded"] == 3
    css = s3.get_object(Bucket=bucket, Key="static/app.css")
    assert css["ContentEncoding"] == "br" and css["ContentType"] == "text/css; charset=utf-8"
    assert brotli.decompress(css["Body"].read()) == text.encode()
    for key in ("static/app.css.br", "static/logo.png"):
        assert "ContentEncoding" not in s3.head_object(Bucket=bucket, Key=key), key
    assert not run_module(args, tmp_path)["changed"]
    # Another encoding is other stored bytes: the text file is uploaded again.
    regzip = run_module(dict(args, compress="gzip"), tmp_path)
    assert regzip["uploaded"] == 1
    assert s3.head_object(Bucket=bucket, Key="static/app.css")["ContentEncoding"] == "gzip"


def test_flask_s3_url_for_points_at_the_uploaded_keys(moto, s3, bucket, tmp_path):
    pkg = tmp_path / "apps" / "tinyshop"
    write_tree(
        pkg,
        {
            "__init__.py": (
                "from flask import Flask, Blueprint\n"
                "print('noise on stdout at import')\n"
                "app = Flask(__name__)\n"
                "bp = Blueprint('shop', __name__, static_folder='shop_assets',\n"
                "               static_url_path='/assets', url_prefix='/shop')\n"
                "app.register_blueprint(bp)\n"
                "late = Blueprint('late', __name__, static_folder='late_static')\n"
                "app.register_blueprint(late, url_prefix='/late')\n"
                "nostatic = Blueprint('api', __name__)\n"
                "app.register_blueprint(nostatic, url_prefix='/api')\n"
            ),
            "static/css/site.css": "body{}\n",
            "static/img/a b.svg": "<svg/>",
            "shop_assets/shop.js": "shop()\n",
            "late_static/late.css": ".late{}\n",
        },
    )
    found = list_folders("tinyshop:app", PYTHONPATH=str(tmp_path / "apps"))
    by_endpoint = {f["endpoint"]: f for f in found["folders"]}
    assert by_endpoint["static"]["url_path"] == "/static"
    assert by_endpoint["shop.static"]["url_path"] == "/shop/assets"
    assert by_endpoint["late.static"]["url_path"] == "/late/late_static"
    assert "api.static" not in by_endpoint
    assert any("late.static" in w for w in found["warnings"])

    folders = [{"path": f["path"], "url_path": f["url_path"]} for f in found["folders"]]
    # Public reads through a bucket policy, as ACLs are not used.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::%s/assets/*" % bucket,
            }
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    result = run_module(module_args(moto.endpoint, bucket, folders, prefix="assets"), tmp_path)
    assert result["uploaded"] == 4

    sys.path.insert(0, str(tmp_path / "apps"))
    try:
        import flask_s3
        import tinyshop
    finally:
        sys.path.pop(0)
    tinyshop.app.config.update({k: v for k, v in result["env"].items()})
    tinyshop.app.config["FLASKS3_USE_HTTPS"] = result["env"]["FLASKS3_USE_HTTPS"] == "true"
    flask_s3.FlaskS3(tinyshop.app)
    template = (
        "{{ url_for('static', filename='css/site.css') }}\n"
        "{{ url_for('static', filename='img/a b.svg') }}\n"
        "{{ url_for('shop.static', filename='shop.js') }}\n"
        "{{ url_for('late.static', filename='late.css') }}"
    )
    with tinyshop.app.test_request_context():
        from flask import render_template_string

        urls = render_template_string(template).split("\n")
    expected = [
        b"body{}\n",
        b"<svg/>",
        b"shop()\n",
        b".late{}\n",
    ]
    for url, content in zip(urls, expected, strict=True):
        assert url.startswith(moto.endpoint + "/" + bucket + "/assets/"), url
        resp = requests.get(url, timeout=10)
        assert resp.status_code == 200 and resp.content == content, url


def test_demo_app_folders(tmp_path):
    demo = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "flask_demo"
    )
    found = list_folders("gantry_demo.wsgi:app", cwd=str(tmp_path), PYTHONPATH=demo,
                         SECRET_KEY="discovery-only")
    by_endpoint = {f["endpoint"]: f for f in found["folders"]}
    assert by_endpoint["static"]["url_path"] == "/static"
    assert by_endpoint["static"]["path"] == os.path.join(demo, "gantry_demo", "static")
    assert by_endpoint["catalog.static"]["path"] == os.path.join(
        demo, "gantry_demo", "catalog", "static"
    )
    assert found["warnings"] == []


def test_parallel_listing_ranges_cover_every_key(moto, s3, bucket):
    from ansible_collections.gantry.deploy.plugins.module_utils.gantry_s3_io import S3Store

    local = ["p/static/%s.css" % c for c in "bdfhjlnprt"]
    remote_only = ["p/static/a.css", "p/static/e.css", "p/static/zz/x.css", "p/other.css"]
    for key in local[::2] + remote_only:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    ranges = S3Store.list_ranges(["p/static/"], local, page=3)
    assert [(a, b) for _, a, b in ranges] == [
        (None, "p/static/f.css"),
        ("p/static/f.css", "p/static/l.css"),
        ("p/static/l.css", "p/static/r.css"),
        ("p/static/r.css", None),
    ]
    store = S3Store(
        bucket,
        endpoint_url=moto.endpoint,
        region="us-east-1",
        aws_access_key_id=s3_helpers.KEY_ID,
        aws_secret_access_key=s3_helpers.SECRET,
    )
    seen = {}
    for r in ranges:
        part = store.list_range(*r)
        assert not set(part) & set(seen)
        seen.update(part)
    assert sorted(seen) == sorted(k for k in local[::2] + remote_only if k.startswith("p/static/"))
    assert seen["p/static/b.css"][1] == len(b"p/static/b.css")


def test_absent_removes_ours_only_and_is_idempotent(moto, s3, bucket, site, tmp_path):
    s3.put_object(Bucket=bucket, Key="pfx/static/theirs.css", Body=b"theirs")
    args = module_args(moto.endpoint, bucket, site["folders"], prefix="pfx", release="r1")
    run_module(args, tmp_path)
    gone = dict(args, state="absent", folders=None)
    preview = run_module(gone, tmp_path, check=True)
    assert preview["changed"] and preview["deleted"] == 7
    assert len(list_keys(s3, bucket)) == 9
    assert run_module(gone, tmp_path)["deleted"] == 7
    assert list(list_keys(s3, bucket)) == ["pfx/static/theirs.css"]
    assert not run_module(gone, tmp_path)["changed"]
    assert not run_module(dict(gone, bucket="gantry-never-made"), tmp_path)["changed"]


def version_keys(s3, bucket, prefix="pfx"):
    """Keys per asset version under ``prefix``, the manifest left out."""
    out = {}
    for key in list_keys(s3, bucket):
        head, _, rest = key[len(prefix) + 1 :].partition("/")
        if key.startswith(prefix + "/") and rest:
            out.setdefault(head, set()).add(rest)
    return out


def test_versioned_code_only_deploy_uploads_nothing(moto, s3, bucket, site, tmp_path):
    args = module_args(moto.endpoint, bucket, site["folders"], prefix="pfx", versioned=True)
    first = run_module(dict(args, release="r1"), tmp_path)
    version = first["version"]
    assert version.startswith("v") and first["uploaded"] == 7
    assert first["env"]["FLASKS3_PREFIX"] == "pfx/" + version
    assert set(version_keys(s3, bucket)) == {version}
    # Every object of a version is immutable, hashed name or not.
    css = s3.head_object(Bucket=bucket, Key="pfx/%s/static/css/app.css" % version)
    assert css["CacheControl"] == "public, max-age=31536000, immutable"
    touch_all(site["root"], time.time() + 3600)
    second = run_module(dict(args, release="r2"), tmp_path)
    assert (second["version"], second["uploaded"], second["copied"]) == (version, 0, 0)
    assert second["env"] == first["env"] and second["changed_urls"] == []
    assert second["releases"] == ["r2", "r1"]
    again = run_module(dict(args, release="r2"), tmp_path)
    assert not again["changed"]
    # A known version is trusted from the manifest, not listed: an object deleted behind
    # the module's back goes unnoticed by default, and verify_objects writes it again.
    s3.delete_object(Bucket=bucket, Key="pfx/%s/static/css/app.css" % version)
    trusted = run_module(dict(args, release="r3"), tmp_path)
    assert (trusted["version"], trusted["uploaded"], trusted["unchanged"]) == (version, 0, 7)
    assert "pfx/%s/static/css/app.css" % version not in list_keys(s3, bucket)
    repaired = run_module(dict(args, release="r4", verify_objects=True), tmp_path)
    assert (repaired["version"], repaired["uploaded"], repaired["unchanged"]) == (version, 1, 6)
    assert "pfx/%s/static/css/app.css" % version in list_keys(s3, bucket)


def test_versioned_static_change_copies_the_rest_and_keeps_the_old_version(
    moto, s3, bucket, site, tmp_path
):
    args = module_args(
        moto.endpoint, bucket, site["folders"], prefix="pfx", versioned=True, keep_releases=1
    )
    old = run_module(dict(args, release="r1"), tmp_path)["version"]
    (site["root"] / "static/css/app.css").write_text("body { color: #c00 }\n")
    preview = run_module(dict(args, release="r2"), tmp_path, check=True, diff=True)
    assert (preview["uploaded"], preview["copied"]) == (1, 6)
    assert set(version_keys(s3, bucket)) == {old}
    new = run_module(dict(args, release="r2"), tmp_path)
    assert new["version"] not in ("", old)
    assert (new["uploaded"], new["copied"], new["deleted"]) == (1, 6, 0)
    assert new["changed_urls"] == []
    versions = version_keys(s3, bucket)
    assert set(versions) == {old, new["version"]} and versions[old] == versions[new["version"]]
    assert body(s3, bucket, "pfx/%s/static/css/app.css" % old) == b"body { color: #333 }\n" * 40
    assert body(s3, bucket, "pfx/%s/static/css/app.css" % new["version"]) == (
        b"body { color: #c00 }\n"
    )
    # A copy carries the headers and the content hash of its own key.
    logo = s3.head_object(Bucket=bucket, Key="pfx/%s/static/img/logo.png" % new["version"])
    assert logo["ContentType"] == "image/png" and "gantry-sha256" in logo["Metadata"]
    # A third release pushes r1 out of the window: its version goes, nothing else.
    (site["root"] / "static/css/print.css").write_text("@media print { a {} }\n")
    third = run_module(dict(args, release="r3"), tmp_path)
    assert third["deleted"] == 7 and third["releases"] == ["r3", "r2"]
    assert set(version_keys(s3, bucket)) == {new["version"], third["version"]}
    assert set(manifest(s3, bucket)["versions"]) == {new["version"], third["version"]}


def test_versioned_grace_period_keeps_a_retired_version(moto, s3, bucket, site, tmp_path):
    args = module_args(
        moto.endpoint,
        bucket,
        site["folders"],
        prefix="pfx",
        versioned=True,
        keep_releases=0,
        grace_period=600,
    )
    old = run_module(dict(args, release="r1"), tmp_path)["version"]
    (site["root"] / "static/css/app.css").write_text("body { color: #c00 }\n")
    new = run_module(dict(args, release="r2"), tmp_path)
    assert new["deleted"] == 0 and new["kept_for_grace"] == 7
    assert set(version_keys(s3, bucket)) == {old, new["version"]}
    # Inside the grace period nothing changes; after it, the retired version goes. The
    # period shrinks instead of the test waiting it out: a slow machine cannot make the
    # first run fall outside it.
    assert not run_module(dict(args, release="r2"), tmp_path)["changed"]
    time.sleep(1.1)
    later = run_module(dict(args, release="r2", grace_period=1), tmp_path)
    assert later["deleted"] == 7 and later["releases"] == ["r2"]
    assert set(version_keys(s3, bucket)) == {new["version"]}


def test_versioned_rollback_to_a_kept_release_uploads_nothing(moto, s3, bucket, site, tmp_path):
    args = module_args(
        moto.endpoint, bucket, site["folders"], prefix="pfx", versioned=True, keep_releases=2
    )
    old = run_module(dict(args, release="r1"), tmp_path)
    original = (site["root"] / "static/css/app.css").read_text()
    (site["root"] / "static/css/app.css").write_text("body { color: #c00 }\n")
    run_module(dict(args, release="r2"), tmp_path)
    (site["root"] / "static/css/app.css").write_text(original)
    back = run_module(dict(args, release="r1"), tmp_path)
    assert back["version"] == old["version"] and back["env"] == old["env"]
    assert (back["uploaded"], back["copied"], back["deleted"]) == (0, 0, 0)


def test_versioned_older_known_version_is_still_checked(moto, s3, bucket, site, tmp_path):
    # With verify_objects the newest release's version is listed while the files are
    # hashed; a deploy of another known version must list that one instead.
    args = module_args(
        moto.endpoint,
        bucket,
        site["folders"],
        prefix="pfx",
        versioned=True,
        keep_releases=2,
        verify_objects=True,
    )
    old = run_module(dict(args, release="r1"), tmp_path)["version"]
    original = (site["root"] / "static/css/app.css").read_text()
    (site["root"] / "static/css/app.css").write_text("body { color: #c00 }\n")
    run_module(dict(args, release="r2"), tmp_path)
    (site["root"] / "static/css/app.css").write_text(original)
    s3.delete_object(Bucket=bucket, Key="pfx/%s/static/css/app.css" % old)
    back = run_module(dict(args, release="r3"), tmp_path)
    assert (back["version"], back["uploaded"], back["copied"], back["unchanged"]) == (old, 1, 0, 6)
    assert body(s3, bucket, "pfx/%s/static/css/app.css" % old) == original.encode()


def test_versioned_apps_sharing_a_bucket_keep_apart(moto, s3, bucket, site, tmp_path):
    shop = module_args(moto.endpoint, bucket, site["folders"], prefix="shop", versioned=True)
    blog = module_args(moto.endpoint, bucket, site["folders"], prefix="blog", versioned=True)
    run_module(dict(shop, release="s1", keep_releases=0), tmp_path)
    blog_first = run_module(dict(blog, release="b1", keep_releases=0), tmp_path)
    blog_keys = {k for k in list_keys(s3, bucket) if k.startswith("blog/")}
    (site["root"] / "static/css/app.css").write_text("body { color: #c00 }\n")
    run_module(dict(shop, release="s2", keep_releases=0), tmp_path)
    run_module(dict(shop, state="absent", folders=None), tmp_path)
    assert {k for k in list_keys(s3, bucket) if k.startswith("blog/")} == blog_keys
    assert not any(k.startswith("shop/") for k in list_keys(s3, bucket))
    assert blog_first["env"]["FLASKS3_PREFIX"].startswith("blog/v")
    blog_css = "%s/static/css/app.css" % blog_first["env"]["FLASKS3_PREFIX"]
    assert body(s3, bucket, blog_css) == b"body { color: #333 }\n" * 40
