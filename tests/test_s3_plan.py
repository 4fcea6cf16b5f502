"""Unit tests of the planning half of s3_static_sync (no network)."""

import mimetypes
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ansible_collections.gantry.deploy.plugins.module_utils import gantry_s3 as g  # noqa: E402
from s3_helpers import write_tree  # noqa: E402


def policy(rules=(), scoped=False):
    return g.HeaderPolicy(
        list(rules),
        "public, max-age=300",
        "public, max-age=31536000, immutable",
        r"[.-][0-9a-fA-F]{8,64}(\.[A-Za-z0-9]+)+$",
        scoped,
    )


@pytest.mark.parametrize(
    "pattern,key,expected",
    [
        ("*.css", "static/css/app.css", True),
        ("*.css", "static/css/app.css.map", False),
        ("static/*.css", "static/css/app.css", False),
        ("static/**/*.css", "static/css/app.css", True),
        ("static/**/*.css", "static/app.css", True),
        ("static/**", "static/a/b/c.js", True),
        ("/static/img/?.png", "static/img/a.png", True),
        ("static/img/[ab].png", "static/img/c.png", False),
        ("static/img/[!ab].png", "static/img/c.png", True),
        ("a b é.txt", "static/a b é.txt", True),
    ],
)
def test_glob_matching(pattern, key, expected):
    assert g.PathMatcher(pattern).matches(key) is expected


def test_regex_is_searched_in_relative_key():
    assert g.PathMatcher(r"^static/fonts/", "regex").matches("static/fonts/a.woff2")
    assert not g.PathMatcher(r"^fonts/", "regex").matches("static/fonts/a.woff2")
    with pytest.raises(g.PlanError):
        g.PathMatcher("(", "regex")


def test_content_types_do_not_depend_on_the_os_table(monkeypatch):
    monkeypatch.setattr(mimetypes, "types_map", {})
    monkeypatch.setattr(mimetypes, "guess_type", lambda *a, **k: (None, None))
    assert g.content_type_for("app.JS") == "text/javascript; charset=utf-8"
    assert g.content_type_for("a.css") == "text/css; charset=utf-8"
    assert g.content_type_for("f.woff2") == "font/woff2"
    assert g.content_type_for("site.webmanifest") == "application/manifest+json"
    assert g.content_type_for("x.js.map") == "application/json"
    assert g.content_type_for("LICENSE") == "application/octet-stream"
    assert g.is_compressible("image/svg+xml") and not g.is_compressible("image/png")


def test_default_headers_hashed_and_plain_names():
    params, meta = policy().headers("static/js/app.3f2a9b1c.js")
    assert params["CacheControl"] == "public, max-age=31536000, immutable"
    assert g.is_immutable(params)
    params, meta = policy().headers("static/js/jquery-3.7.1.min.js")
    assert params["CacheControl"] == "public, max-age=300"
    assert params["ContentType"] == "text/javascript; charset=utf-8"
    assert meta == {}


def test_release_scoped_prefix_makes_everything_immutable():
    assert g.release_scoped("assets/r42", "r42")
    assert not g.release_scoped("assets/r421", "r42")
    params, _ = policy(scoped=True).headers("static/css/app.css")
    assert g.is_immutable(params)


def test_rules_apply_in_order_and_empty_removes():
    rules = [
        {"pattern": "*.css", "cache_control": "max-age=60", "metadata": {"Team": "web"}},
        {"pattern": r"^static/css/print", "match": "regex", "cache_control": "no-cache"},
        {"pattern": "static/css/print.css", "content_language": "en"},
        {"pattern": "*.txt", "cache_control": "", "content_type": "text/x-custom"},
    ]
    p = policy(rules)
    assert p.headers("static/css/app.css") == (
        {"CacheControl": "max-age=60", "ContentType": "text/css; charset=utf-8"},
        {"team": "web"},
    )
    params, _ = p.headers("static/css/print.css")
    assert params["CacheControl"] == "no-cache" and params["ContentLanguage"] == "en"
    assert p.headers("static/robots.txt")[0] == {"ContentType": "text/x-custom"}
    with pytest.raises(g.PlanError):
        policy([{"pattern": "*", "metadata": {g.SHA_METADATA_KEY: "x"}}])


def test_scan_uses_flask_s3_layout(tmp_path):
    write_tree(
        tmp_path / "app",
        {"css/a.css": "a", ".hidden": "h", "deep/er/x y é.js": "x", "src/a.scss": "s"},
    )
    write_tree(tmp_path / "bp", {"b.png": b"b"})
    folders = [
        {"path": str(tmp_path / "app"), "url_path": "/static"},
        {"path": str(tmp_path / "bp"), "url_path": "/shop/static"},
    ]
    files = g.scan_folders(folders, "pfx", exclude=["static/src/**"])
    assert [f.key for f in files] == [
        "pfx/shop/static/b.png",
        "pfx/static/css/a.css",
        "pfx/static/deep/er/x y é.js",
    ]
    assert files[2].rel_key == "static/deep/er/x y é.js"
    hidden = g.scan_folders(folders, "", include_hidden=True)
    assert "static/.hidden" in [f.key for f in hidden]


def test_scan_refuses_two_files_on_one_key(tmp_path):
    write_tree(tmp_path / "a", {"x.css": "1"})
    write_tree(tmp_path / "b", {"x.css": "2"})
    folders = [
        {"path": str(tmp_path / "a"), "url_path": "/static"},
        {"path": str(tmp_path / "b"), "url_path": "static/"},
    ]
    with pytest.raises(g.PlanError, match="both"):
        g.scan_folders(folders, "")
    with pytest.raises(g.PlanError, match="does not exist"):
        g.scan_folders([{"path": str(tmp_path / "nope"), "url_path": "/s"}], "")


def _local(tmp_path, content="body"):
    write_tree(tmp_path / "s", {"a.css": content})
    f = g.scan_folders([{"path": str(tmp_path / "s"), "url_path": "/static"}], "p")[0]
    f.sha256 = g.sha256_file(f.path)
    f.params, f.metadata = policy().headers(f.rel_key)
    f.digest = g.headers_digest(f.params, f.metadata, None)
    return f


def _record(f, etag='"e1"'):
    return {"sha256": f.sha256, "size": f.size, "etag": etag, "hd": f.digest}


def test_plan_compares_content_not_mtime(tmp_path):
    f = _local(tmp_path)
    manifest = {"version": 1, "releases": [], "objects": {f.key: _record(f)}}
    listing = {f.key: ('"e1"', f.size)}
    os.utime(f.path, (1, 1))
    assert g.plan_sync([f], manifest, listing, "none").actions == []
    # Same size, other bytes.
    (tmp_path / "s" / "a.css").write_text("BODY")
    f.sha256 = g.sha256_file(f.path)
    [action] = g.plan_sync([f], manifest, listing, "none").actions
    assert (action.kind, action.reason) == ("upload", "content")


def test_plan_reuploads_what_changed_behind_our_back(tmp_path):
    f = _local(tmp_path)
    manifest = {"version": 1, "releases": [], "objects": {f.key: _record(f)}}
    for listing in ({}, {f.key: ('"other"', f.size)}, {f.key: ('"e1"', f.size + 1)}):
        [action] = g.plan_sync([f], manifest, listing, "none").actions
        assert action.kind == "upload"
    pending = {"version": 1, "releases": [], "objects": {f.key: {"pending": True}}}
    [action] = g.plan_sync([f], pending, {f.key: ('"e1"', f.size)}, "none").actions
    assert action.kind == "upload"


def test_plan_header_change_is_a_copy(tmp_path):
    f = _local(tmp_path)
    rec = dict(_record(f), hd="old")
    manifest = {"version": 1, "releases": [], "objects": {f.key: rec}}
    [action] = g.plan_sync([f], manifest, {f.key: ('"e1"', f.size)}, "none").actions
    assert (action.kind, action.reason) == ("copy", "headers")
    # Switching compression on changes the stored bytes: a real upload.
    [action] = g.plan_sync([f], manifest, {f.key: ('"e1"', f.size)}, "gzip").actions
    assert (action.kind, action.compress) == ("upload", "gzip")


def test_releases_keep_window_and_stale_keys():
    releases = []
    for i, keys in enumerate((["p/a", "p/b"], ["p/a", "p/c"], ["p/a"], ["p/a"])):
        releases, _ = g.next_releases(releases, "r%d" % i, keys, keep=1, now="t%d" % i)
    assert [r["id"] for r in releases] == ["r3", "r2"]
    objects = {k: {} for k in ("p/a", "p/b", "p/c", "outside/x", "p/.m")}
    assert g.stale_keys(objects, releases, "p/", "p/.m") == ["p/b", "p/c"]
    # Redeploying the newest release with the same files changes nothing.
    again, _ = g.next_releases(releases, "r3", ["p/a"], keep=1, now="later")
    assert again == releases
    # Rolling back moves the old id to the front.
    back, _ = g.next_releases(releases, "r2", ["p/a"], keep=1, now="t9")
    assert [r["id"] for r in back] == ["r2", "r3"]


def test_manifest_round_trip_and_rejects_garbage():
    m = g.empty_manifest()
    assert g.parse_manifest(g.dump_manifest(m)) == m
    with pytest.raises(g.PlanError):
        g.parse_manifest(b"not json")
    with pytest.raises(g.PlanError):
        g.parse_manifest(b'{"version": 99}')


def test_flask_env_and_urls():
    env = g.flask_env("b", "pfx", "eu-west-1", None, "cdn.example.com", "auto")
    assert env["FLASKS3_CDN_DOMAIN"] == "cdn.example.com"
    base = g.public_base_url(env)
    assert g.public_url(base, "pfx/static/a b(1).css") == (
        "https://cdn.example.com/pfx/static/a%20b(1).css"
    )
    aws = g.flask_env("b", "", "eu-west-1", None, "", "auto")
    assert g.public_base_url(aws) == "https://b.s3.eu-west-1.amazonaws.com"
    local = g.flask_env("b", "", None, "http://127.0.0.1:9000", "", "auto")
    assert local["FLASKS3_USE_HTTPS"] == "false"
    assert g.public_base_url(local) == "http://127.0.0.1:9000/b"


def test_asset_version_follows_content_headers_and_encoding(tmp_path):
    f = _local(tmp_path)
    base = g.derive_version([f], "none")
    os.utime(f.path, (1, 1))
    assert g.derive_version([f], "none") == base
    assert g.derive_version([f], "gzip") != base
    f.digest = "other-headers"
    assert g.derive_version([f], "none") != base
    g.place_in_version([f], "shop", base)
    assert f.key == "shop/%s/static/a.css" % base


def test_plan_copies_new_keys_from_an_object_with_the_same_bytes(tmp_path):
    f = _local(tmp_path)
    old_key = f.key
    manifest = {"version": 1, "releases": [], "objects": {old_key: _record(f)}}
    listing = {old_key: ('"e1"', f.size)}
    g.place_in_version([f], "p", "v2")
    [action] = g.plan_sync([f], manifest, listing, "none").actions
    assert (action.kind, action.reason, action.source) == ("copy", "new", old_key)
    # Not from an object the listing no longer shows, nor to another encoding.
    assert g.plan_sync([f], manifest, {}, "none").actions[0].kind == "upload"
    f.params["ContentType"] = "text/css"
    assert g.plan_sync([f], manifest, listing, "gzip").actions[0].kind == "upload"


def test_plan_never_copies_from_a_key_it_rewrites(tmp_path):
    f = _local(tmp_path)
    twin = g.LocalFile("p/static/b.css", "static/b.css", f.path, f.size)
    twin.sha256, twin.params, twin.digest = f.sha256, f.params, f.digest
    # b.css gets a.css's old bytes while a.css itself gets new ones.
    manifest = {"version": 1, "releases": [], "objects": {f.key: _record(f)}}
    f.sha256 = "new-bytes"
    actions = g.plan_sync([f, twin], manifest, {f.key: ('"e1"', f.size)}, "none").actions
    assert [(a.file.key, a.kind) for a in actions] == [
        ("p/static/a.css", "upload"),
        ("p/static/b.css", "upload"),
    ]


def test_versioned_releases_share_a_version_and_retire_after_grace():
    day = "2026-01-0%dT00:00:00Z"
    releases, versions = g.next_releases([], "r1", ["p/v1/a"], 1, now=day % 1, version="v1")
    releases, versions = g.next_releases(
        releases, "r2", ["p/v1/a"], 1, now=day % 2, version="v1", versions=versions
    )
    assert [(r["id"], r["version"]) for r in releases] == [("r2", "v1"), ("r1", "v1")]
    assert versions == {"v1": {"keys": ["p/v1/a"], "time": day % 1}}
    keep = dict(keep=1, version="v2", grace=86400 + 1)
    releases, versions = g.next_releases(
        releases, "r3", ["p/v2/a"], now=day % 3, versions=versions, **keep
    )
    # r1 left the window on day 3 and stays for the grace period.
    assert [r["id"] for r in releases] == ["r3", "r2", "r1"]
    assert releases[2]["retired"] == day % 3 and set(versions) == {"v1", "v2"}
    objects = {k: {} for k in ("p/v1/a", "p/v2/a", "p/v0/a")}
    assert g.stale_keys(objects, releases, "p/", "p/.m", versions) == ["p/v0/a"]
    releases, versions = g.next_releases(
        releases, "r3", ["p/v2/a"], now=day % 4, versions=versions, **keep
    )
    assert [r["id"] for r in releases] == ["r3", "r2", "r1"]
    releases, versions = g.next_releases(
        releases, "r3", ["p/v2/a"], now=day % 5, versions=versions, **keep
    )
    assert [r["id"] for r in releases] == ["r3", "r2"] and set(versions) == {"v1", "v2"}


def test_newest_version_is_the_last_recorded_release_s_while_listed():
    manifest = g.empty_manifest()
    assert g.newest_version(manifest) is None
    manifest["versions"] = {"v1": {"keys": ["a"]}, "v2": {"keys": ["b"]}}
    manifest["releases"] = [{"id": "r2", "version": "v2"}, {"id": "r1", "version": "v1"}]
    assert g.newest_version(manifest) == "v2"
    manifest["releases"][0] = {"id": "r2", "keys": ["b"]}
    assert g.newest_version(manifest) is None
    manifest["releases"][0] = {"id": "r2", "version": "v9"}
    assert g.newest_version(manifest) is None
