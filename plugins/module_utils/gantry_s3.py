# Copyright: Gantry contributors
# MIT License
"""Planning logic of s3_static_sync: everything that needs no network.

Keys follow Flask-S3's create_all layout: ``<prefix>/<url_path>/<path inside folder>``.
The state of the bucket is known from two cheap reads: the manifest object (what we
wrote, with content hashes and header digests) and one ListObjectsV2 pass (what is
really there). Nothing here imports boto3, so the plan can be unit-tested alone.
"""

import calendar
import hashlib
import json
import os
import re
import time
from urllib.parse import quote, urlsplit

MANIFEST_VERSION = 1

# S3 copies objects up to 5 GiB in one CopyObject call; bigger ones are re-uploaded
# when only their headers change.
MAX_COPY_SIZE = 5 * 1024**3

# Below this size gzip rarely pays for its header; WhiteNoise uses the same idea.
MIN_COMPRESS_SIZE = 256

# Compressed bytes are kept only when they save at least 5 %.
MAX_COMPRESS_RATIO = 0.95

# Extension -> Content-Type. Fixed here so that the same tree gets the same headers
# on every controller, whatever /etc/mime.types says.
CONTENT_TYPES = {
    "aac": "audio/aac",
    "apng": "image/apng",
    "avif": "image/avif",
    "bmp": "image/bmp",
    "cjs": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "eot": "application/vnd.ms-fontobject",
    "flac": "audio/flac",
    "gif": "image/gif",
    "gz": "application/gzip",
    "htm": "text/html; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "ico": "image/vnd.microsoft.icon",
    "ics": "text/calendar; charset=utf-8",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "js": "text/javascript; charset=utf-8",
    "json": "application/json",
    "jsonld": "application/ld+json",
    "m4a": "audio/mp4",
    "map": "application/json",
    "md": "text/markdown; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "mp3": "audio/mpeg",
    "mp4": "video/mp4",
    "oga": "audio/ogg",
    "ogg": "audio/ogg",
    "ogv": "video/ogg",
    "otf": "font/otf",
    "pdf": "application/pdf",
    "png": "image/png",
    "rss": "application/rss+xml",
    "svg": "image/svg+xml",
    "tar": "application/x-tar",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "ttf": "font/ttf",
    "txt": "text/plain; charset=utf-8",
    "wasm": "application/wasm",
    "wav": "audio/wav",
    "weba": "audio/webm",
    "webm": "video/webm",
    "webmanifest": "application/manifest+json",
    "webp": "image/webp",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "xml": "application/xml",
    "zip": "application/zip",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"

# Types worth gzipping; images, fonts in woff/woff2 and media are compressed already.
COMPRESSIBLE_TYPES = frozenset(
    (
        "application/json",
        "application/ld+json",
        "application/manifest+json",
        "application/rss+xml",
        "application/vnd.ms-fontobject",
        "application/wasm",
        "application/xml",
        "font/otf",
        "font/ttf",
        "image/bmp",
        "image/svg+xml",
        "image/vnd.microsoft.icon",
    )
)

# Header fields a rule may set, as rule option -> boto3 parameter.
HEADER_FIELDS = {
    "cache_control": "CacheControl",
    "content_type": "ContentType",
    "content_disposition": "ContentDisposition",
    "content_language": "ContentLanguage",
}

SHA_METADATA_KEY = "gantry-sha256"


class PlanError(Exception):
    """Input that cannot be turned into a safe plan."""


def content_type_for(name):
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return CONTENT_TYPES.get(ext, DEFAULT_CONTENT_TYPE)


def is_compressible(content_type):
    base = content_type.split(";", 1)[0].strip()
    return base.startswith("text/") or base in COMPRESSIBLE_TYPES


def glob_to_regex(pattern):
    """Translate a path glob: ``*`` and ``?`` stay inside one path segment, ``**``
    crosses segments and ``[...]`` is a character class."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "(?s:" + "".join(out) + r")\Z"


class PathMatcher:
    """A glob or a regex matched against a key relative to the prefix.

    A glob without ``/`` matches the file name in any directory (``*.css``); a glob
    with ``/`` matches the whole relative key (``static/vendor/**``). A regex is
    searched anywhere in the relative key, as Flask-S3's FLASKS3_FILEPATH_HEADERS do.
    """

    def __init__(self, pattern, kind="glob"):
        self.pattern = pattern
        try:
            if kind == "regex":
                self._re = re.compile(pattern)
                self._basename = False
            else:
                glob = pattern.lstrip("/")
                self._re = re.compile(glob_to_regex(glob))
                self._basename = "/" not in glob
        except re.error as exc:
            raise PlanError("invalid %s %r: %s" % (kind, pattern, exc)) from exc
        self._search = kind == "regex"

    def matches(self, rel_key):
        target = rel_key.rsplit("/", 1)[-1] if self._basename else rel_key
        if self._search:
            return self._re.search(target) is not None
        return self._re.match(target) is not None


class HeaderPolicy:
    """Computes the S3 headers of a key: content type from the built-in table,
    long immutable caching for content-hashed or release-scoped keys, a short max-age
    for the rest, then the user's rules in order (a later rule wins per field)."""

    def __init__(
        self,
        rules,
        default_cache_control,
        immutable_cache_control,
        immutable_pattern,
        release_scoped,
        acl=None,
    ):
        self.default_cache_control = default_cache_control
        self.immutable_cache_control = immutable_cache_control
        self.release_scoped = release_scoped
        self.acl = acl
        try:
            self.immutable_re = re.compile(immutable_pattern) if immutable_pattern else None
        except re.error as exc:
            raise PlanError("invalid immutable_pattern: %s" % exc) from exc
        self.rules = []
        for rule in rules or []:
            matcher = PathMatcher(rule["pattern"], rule.get("match") or "glob")
            fields = {
                param: rule[opt]
                for opt, param in HEADER_FIELDS.items()
                if rule.get(opt) is not None
            }
            metadata = {str(k).lower(): str(v) for k, v in (rule.get("metadata") or {}).items()}
            if SHA_METADATA_KEY in metadata:
                raise PlanError("metadata key %s is reserved" % SHA_METADATA_KEY)
            self.rules.append((matcher, fields, metadata))

    def headers(self, rel_key):
        """Return (params, metadata): boto3 header parameters and user metadata."""
        name = rel_key.rsplit("/", 1)[-1]
        hashed = self.immutable_re is not None and self.immutable_re.search(name) is not None
        params = {
            "CacheControl": self.immutable_cache_control
            if self.release_scoped or hashed
            else self.default_cache_control,
            "ContentType": content_type_for(name),
        }
        metadata = {}
        for matcher, fields, rule_metadata in self.rules:
            if matcher.matches(rel_key):
                params.update(fields)
                metadata.update(rule_metadata)
        # An empty value in a rule means "do not send this header".
        params = {k: v for k, v in params.items() if v != ""}
        return params, metadata


def headers_digest(params, metadata, acl):
    blob = json.dumps([params, metadata, acl or ""], sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


def is_immutable(params):
    tokens = [t.strip().lower() for t in params.get("CacheControl", "").split(",")]
    return "immutable" in tokens


def join_key(*parts):
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def normalize_prefix(prefix):
    return (prefix or "").strip("/")


def prefix_scope(prefix):
    """The string every key we may touch starts with."""
    return prefix + "/" if prefix else ""


def release_scoped(prefix, release):
    return bool(release) and release in prefix.split("/")


class LocalFile:
    __slots__ = ("key", "rel_key", "path", "size", "sha256", "params", "metadata", "digest")

    def __init__(self, key, rel_key, path, size):
        self.key = key
        self.rel_key = rel_key
        self.path = path
        self.size = size
        self.sha256 = None
        self.params = None
        self.metadata = None
        self.digest = None


def scan_folders(folders, prefix, include_hidden=False, exclude=()):
    """Walk the folders the way Flask-S3's _gather_files does (files whose name starts
    with a dot are skipped unless asked, symlinked directories are not followed) and
    return LocalFile objects sorted by key."""
    matchers = [PathMatcher(p) for p in exclude or ()]
    found = {}
    for folder in folders:
        root_dir = os.path.abspath(folder["path"])
        if not os.path.isdir(root_dir):
            raise PlanError("static folder %s does not exist" % root_dir)
        url_path = folder.get("url_path") or ""
        for root, dirs, files in os.walk(root_dir):
            dirs.sort()
            rel_dir = os.path.relpath(root, root_dir)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
            for name in sorted(files):
                if not include_hidden and name.startswith("."):
                    continue
                rel_key = join_key(url_path, rel_dir, name)
                if any(m.matches(rel_key) for m in matchers):
                    continue
                path = os.path.join(root, name)
                try:
                    rel_key.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise PlanError("file name %r is not valid UTF-8" % path) from exc
                key = join_key(prefix, rel_key)
                if key in found:
                    raise PlanError(
                        "%s and %s would both be uploaded as %s" % (found[key].path, path, key)
                    )
                try:
                    size = os.stat(path).st_size
                except FileNotFoundError:
                    # A dangling symlink: Flask could not serve it either.
                    continue
                found[key] = LocalFile(key, rel_key, path, size)
    return [found[k] for k in sorted(found)]


def sha256_file(path, bufsize=1024 * 1024):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(bufsize)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def derive_release(files):
    h = hashlib.sha256()
    for f in files:
        h.update(("%s\0%s\n" % (f.key, f.sha256)).encode("utf-8"))
    return h.hexdigest()[:12]


def derive_version(files, compress):
    """Asset version of a static tree: changes when, and only when, a key, a file's
    content, its headers or the stored encoding would change, so the objects under one
    version never change."""
    h = hashlib.sha256(("compress=%s\n" % compress).encode("utf-8"))
    for f in sorted(files, key=lambda f: f.rel_key):
        h.update(("%s\0%s\0%s\n" % (f.rel_key, f.sha256, f.digest)).encode("utf-8"))
    return "v" + h.hexdigest()[:12]


def place_in_version(files, prefix, version):
    for f in files:
        f.key = join_key(prefix, version, f.rel_key)


def empty_manifest():
    return {"version": MANIFEST_VERSION, "releases": [], "objects": {}, "versions": {}}


def parse_manifest(raw):
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise PlanError("the manifest object is not JSON: %s" % exc) from exc
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise PlanError(
            "the manifest object has an unknown format (version %r)"
            % (data.get("version") if isinstance(data, dict) else None)
        )
    data.setdefault("releases", [])
    data.setdefault("objects", {})
    data.setdefault("versions", {})
    return data


def dump_manifest(manifest):
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Action:
    """One thing to do to one key: ``upload`` (reason new|content|headers) or ``copy``
    from ``source`` inside the bucket (the key itself when only headers change, another
    key holding the same bytes when the key is new), so the bytes are not sent again."""

    __slots__ = ("kind", "reason", "file", "compress", "source")

    def __init__(self, kind, reason, file, compress, source=None):
        self.kind = kind
        self.reason = reason
        self.file = file
        self.compress = compress
        self.source = source


class Plan:
    def __init__(self):
        self.actions = []
        self.unchanged = []
        self.files = []


def recorded_objects(manifest, keys):
    """The objects of ``keys`` the manifest records as written, as a listing would show
    them: what a run trusts instead of listing. Pending keys (a run that did not finish)
    are left out, so they are written again."""
    out = {}
    for key in keys:
        rec = manifest["objects"].get(key)
        if rec and not rec.get("pending"):
            out[key] = (rec.get("etag"), rec.get("size"))
    return out


def intact_objects(manifest, listing):
    """Keys of the manifest whose object is still there as we wrote it."""
    out = {}
    for key, rec in manifest["objects"].items():
        seen = listing.get(key)
        if (
            not rec.get("pending")
            and seen is not None
            and seen[0] == rec.get("etag")
            and seen[1] == rec.get("size")
        ):
            out[key] = rec
    return out


def plan_sync(files, manifest, listing, compress):
    """Compare local files with the manifest and the listing.

    An object counts as ours and intact only if the manifest recorded it and the
    listing shows the same ETag and size; anything else (missing, replaced behind our
    back, half-written by an interrupted run) is written again: copied from an intact
    object of ours with the same bytes (another asset version, a renamed file), else
    uploaded.
    """
    plan = Plan()
    plan.files = files
    intact = intact_objects(manifest, listing)
    local = {f.key: f.sha256 for f in files}
    sources = {}
    for key in sorted(intact):
        rec = intact[key]
        # A key this run rewrites with other bytes cannot be a source: it may change
        # while it is being copied.
        if key in local and local[key] != rec.get("sha256"):
            continue
        if rec.get("sha256") and rec["size"] <= MAX_COPY_SIZE:
            sources.setdefault((rec["sha256"], rec.get("zmode")), key)
    for f in files:
        want_zip = (
            compress
            if compress != "none" and is_compressible(f.params.get("ContentType", ""))
            else None
        )
        rec = intact.get(f.key)
        if rec is None:
            reason = "content" if f.key in listing else "new"
            source = sources.get((f.sha256, want_zip))
            if source is not None:
                plan.actions.append(Action("copy", reason, f, want_zip, source))
            else:
                plan.actions.append(Action("upload", reason, f, want_zip))
        elif rec.get("sha256") != f.sha256 or rec.get("zmode") != want_zip:
            plan.actions.append(Action("upload", "content", f, want_zip))
        elif rec.get("hd") != f.digest:
            if rec["size"] > MAX_COPY_SIZE:
                plan.actions.append(Action("upload", "headers", f, want_zip))
            else:
                plan.actions.append(Action("copy", "headers", f, want_zip, f.key))
        else:
            plan.unchanged.append(f)
    return plan


def epoch_of(stamp):
    try:
        return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return None


def release_keys(entry, versions):
    """Keys a release's pages reference: its own list, or its asset version's."""
    if "version" in entry:
        return (versions.get(entry["version"]) or {}).get("keys", [])
    return entry.get("keys", [])


def newest_version(manifest):
    """The asset version of the release recorded last, if the manifest still lists it."""
    releases = manifest.get("releases") or []
    version = releases[0].get("version") if releases else None
    return version if version in (manifest.get("versions") or {}) else None


def next_releases(releases, release, keys, keep, now=None, version=None, grace=0, versions=None):
    """Return the release list to record, and the asset versions it uses.

    This release comes first, then up to ``keep`` earlier releases whose assets stay for
    pages still being served. A release pushed out of that window stays ``grace``
    seconds more (``retired`` records when it left), for pages open in browsers and
    hosts a rollback may put back. With ``version`` the release records its asset
    version and the version records the keys, once however many releases share it.
    """
    now = now if now is not None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    now_epoch = epoch_of(now)
    versions = dict(versions or {})
    keys = sorted(keys)
    previous = [r for r in releases if r.get("id") != release]
    head = releases[0] if releases else None
    if version is not None:
        if versions.get(version, {}).get("keys") != keys:
            versions[version] = {"keys": keys, "time": now}
        wanted = {"id": release, "version": version}
    else:
        wanted = {"id": release, "keys": keys}
    same = head is not None and all(head.get(k) == v for k, v in wanted.items())
    current = head if same and "retired" not in head else dict(wanted, time=now)
    kept = [dict(r) for r in previous[:keep]]
    for r in kept:
        r.pop("retired", None)
    retired = []
    if grace > 0:
        for r in previous[keep:]:
            r = dict(r)
            r.setdefault("retired", now)
            since = epoch_of(r["retired"])
            if since is None or now_epoch is None or now_epoch - since < grace:
                retired.append(r)
    out = [current] + kept + retired
    used = {r["version"] for r in out if "version" in r}
    return out, {v: rec for v, rec in versions.items() if v in used}


def stale_keys(objects, releases, scope, manifest_key, versions=None):
    """Keys we wrote that no kept release references. Keys outside the prefix are
    never returned, whatever the manifest says."""
    wanted = set()
    for r in releases:
        wanted.update(release_keys(r, versions or {}))
    out = []
    for key in sorted(objects):
        if key in wanted or key == manifest_key:
            continue
        if scope and not key.startswith(scope):
            continue
        out.append(key)
    return out


def flask_env(bucket, prefix, region, endpoint_url, cdn_domain, addressing_style):
    """The FLASKS3_* values a Flask-S3 app needs for url_for to point at our keys."""
    env = {
        "FLASKS3_ACTIVE": "true",
        "FLASKS3_BUCKET_NAME": bucket,
        "FLASKS3_PREFIX": prefix,
    }
    if region:
        env["FLASKS3_REGION"] = region
    if cdn_domain:
        env["FLASKS3_CDN_DOMAIN"] = cdn_domain
        env["FLASKS3_USE_HTTPS"] = "true"
    elif endpoint_url:
        parts = urlsplit(endpoint_url)
        env["FLASKS3_ENDPOINT_URL"] = endpoint_url
        env["FLASKS3_BUCKET_DOMAIN"] = parts.netloc + parts.path.rstrip("/")
        env["FLASKS3_URL_STYLE"] = "host" if addressing_style == "virtual" else "path"
        env["FLASKS3_USE_HTTPS"] = "true" if parts.scheme == "https" else "false"
    else:
        env["FLASKS3_BUCKET_DOMAIN"] = (
            "s3.%s.amazonaws.com" % region if region else "s3.amazonaws.com"
        )
        env["FLASKS3_URL_STYLE"] = "path" if addressing_style == "path" else "host"
        env["FLASKS3_USE_HTTPS"] = "true"
    return env


def public_base_url(env):
    """Base URL Flask-S3's url_for builds for these settings, without the prefix."""
    scheme = "https" if env.get("FLASKS3_USE_HTTPS") == "true" else "http"
    if env.get("FLASKS3_CDN_DOMAIN"):
        return "%s://%s" % (scheme, env["FLASKS3_CDN_DOMAIN"])
    if env.get("FLASKS3_URL_STYLE") == "path":
        return "%s://%s/%s" % (scheme, env["FLASKS3_BUCKET_DOMAIN"], env["FLASKS3_BUCKET_NAME"])
    return "%s://%s.%s" % (scheme, env["FLASKS3_BUCKET_NAME"], env["FLASKS3_BUCKET_DOMAIN"])


def public_url(base, key):
    # Quoted like Werkzeug's URL converters, so the URL is the one url_for renders.
    return "%s/%s" % (base, quote(key, safe="!$&'()*+,/:;=@"))
