#!/usr/bin/python
# Copyright: Gantry contributors
# MIT License
"""Upload a Flask app's static folders to S3 in Flask-S3's key layout."""

DOCUMENTATION = r"""
---
module: s3_static_sync
short_description: Upload Flask static folders to S3 in Flask-S3's layout, by content
description:
  - Uploads the files of one or more static folders to an S3 bucket (AWS or any
    S3-compatible endpoint) under the keys Flask-S3's C(create_all) uses,
    C(<prefix>/<url_path>/<file path>), so that Flask-S3's C(url_for) points at them.
  - Decides what to upload by content. A manifest object under the prefix records the
    SHA-256, stored size, ETag and headers of every object this module wrote; it tells
    what changed without one HEAD per file. New mtimes (a fresh checkout) upload
    nothing; a same-size edit uploads.
  - When the manifest does not record every key as written (a run that was
    interrupted, a new file), or with I(verify_objects), one ListObjectsV2 pass shows
    what the bucket holds, and an object missing from it, or whose ETag or size no
    longer matches the manifest, is written again; the next run completes an
    interrupted one.
  - Uploads run in parallel; files from I(multipart_threshold) up go through boto3's
    transfer manager in parts. botocore retries throttling and 5xx answers
    (I(retry_mode)), and the module restarts a failed file up to twice more with
    exponential backoff and jitter.
  - Content-Type comes from a built-in table, never from the OS. Cache-Control is
    I(immutable_cache_control) for content-hashed names (I(immutable_pattern)) and for
    every key when the prefix contains the release id, I(default_cache_control)
    otherwise; I(header_rules) override per glob or regex. When only headers change the
    object is copied onto itself with the new headers; its bytes are not uploaded again.
  - With I(versioned), every key sits under an asset version,
    C(<prefix>/<version>/<url_path>/<file path>), and C(FLASKS3_PREFIX) names it. The
    version is derived from the files' keys, content and headers, so a release whose
    static tree did not change reuses its version and uploads nothing, and a change
    makes a new version whose objects never change afterwards (all of them get
    I(immutable_cache_control); no CDN purge is needed). Files of a new version that an
    earlier version already holds are copied inside the bucket, not uploaded again.
  - Keeps the assets of the I(keep_releases) previous releases, so pages still served by
    hosts not yet switched (or open in a browser) keep working; a release pushed out of
    that window keeps them I(grace_period) seconds more. Objects that no kept release
    references are deleted, or tagged for a lifecycle rule. Only objects this module
    wrote are ever deleted, and never a key outside the prefix.
  - Run it before the code switch of a deploy, on the controller.
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
requirements:
  - boto3
  - brotli (only for I(compress=brotli))
options:
  bucket:
    description: Bucket name (Flask-S3's C(FLASKS3_BUCKET_NAME)).
    type: str
    required: true
  prefix:
    description:
      - Key prefix of every object (Flask-S3's C(FLASKS3_PREFIX)); leading and trailing
        C(/) are ignored. The module reads, writes and deletes nothing outside it, except
        that an empty prefix means the whole bucket.
    type: str
    default: ""
  folders:
    description:
      - Local static folders and the URL path each is served at, as printed by the
        s3_static role's C(flask_static_folders.py) (app static folder and every
        blueprint's). Required when I(state=present).
    type: list
    elements: dict
    suboptions:
      path:
        description: Directory on the controller.
        type: path
        required: true
      url_path:
        description: URL path the folder is served at, such as C(/static) or C(/shop/static).
        type: str
        required: true
  release:
    description:
      - Id of the release these assets belong to, such as the app's release id. Empty
        derives it from the keys and hashes of the files.
    type: str
    default: ""
  keep_releases:
    description:
      - How many previous releases keep their assets in the bucket; match the number of
        releases kept on the hosts, so a rollback finds its assets.
    type: int
    default: 2
  grace_period:
    description:
      - Seconds a release pushed out of the I(keep_releases) window keeps its assets,
        counted from the run that pushed it out. C(0) deletes them at once.
    type: int
    default: 0
  versioned:
    description:
      - Put the objects under an asset version derived from the static tree (see above)
        and return a C(FLASKS3_PREFIX) that names it.
    type: bool
    default: false
  verify_objects:
    description:
      - Whether every run lists the objects it would otherwise trust its manifest for, to
        find any deleted or replaced behind the module's back, and writes them again.
      - C(false) trusts the manifest, as Flask-S3's C(FLASKS3_ONLY_MODIFIED) trusts its
        hash file, since only this module writes under its prefix. A run then lists nothing
        when every key it needs is recorded as written (a code-only deploy, a switch
        back, a re-run, an edit of files it already wrote); it lists when a key is not
        recorded (a new file, a key another tool may have written, what an interrupted
        run left pending), when it makes a new I(versioned) version (its copies need
        intact sources), and when it would copy an object.
    type: bool
    default: false
  stale_action:
    description:
      - What to do with objects no kept release references. C(delete) deletes them;
        C(tag) tags them C(gantry-stale=true) and forgets them, for a lifecycle rule that
        expires tagged objects.
    type: str
    choices: [delete, tag]
    default: delete
  include_hidden:
    description: Upload files whose name starts with a dot (Flask-S3 skips them by default).
    type: bool
    default: false
  exclude:
    description:
      - Globs of files not to upload, matched like I(header_rules) globs, for example
        C(*.scss) or C(static/src/**).
    type: list
    elements: str
    default: []
  header_rules:
    description:
      - Headers per key, applied in order after the defaults; a later rule wins for each
        field it sets. An empty string removes a header.
      - Globs without C(/) match the file name in any directory; with C(/) they match the
        key relative to the prefix, such as C(static/css/app.css). C(*) stays inside a
        directory, C(**) crosses directories. Regexes are searched in the relative key,
        like Flask-S3's C(FLASKS3_FILEPATH_HEADERS).
    type: list
    elements: dict
    default: []
    aliases: [headers]
    suboptions:
      pattern:
        description: Glob or regex.
        type: str
        required: true
      match:
        description: How to read I(pattern).
        type: str
        choices: [glob, regex]
        default: glob
      cache_control:
        description: Cache-Control header.
        type: str
      content_type:
        description: Content-Type header, overriding the built-in table.
        type: str
      content_disposition:
        description: Content-Disposition header.
        type: str
      content_language:
        description: Content-Language header.
        type: str
      metadata:
        description: User metadata (C(x-amz-meta-*)) to set.
        type: dict
  default_cache_control:
    description: Cache-Control of files that are neither content-hashed nor release-scoped.
    type: str
    default: "public, max-age=300"
  immutable_cache_control:
    description: Cache-Control of content-hashed and release-scoped files.
    type: str
    default: "public, max-age=31536000, immutable"
  immutable_pattern:
    description:
      - Regex searched in the file name that marks a content-hashed file, such as
        C(app.3f2a9b1c.css) or C(main-5f4dcc3b9a.min.js). Empty disables the detection.
    type: str
    default: '[.-][0-9a-fA-F]{8,64}(\.[A-Za-z0-9]+)+$'
  compress:
    description:
      - C(gzip) stores text files gzip-compressed with C(Content-Encoding=gzip), C(brotli)
        brotli-compressed with C(Content-Encoding=br), each only when it saves at least
        5 %. Only bytes the module compressed get that header; files that are already
        C(.gz) or C(.br) are stored as they are.
      - S3 cannot negotiate encodings, so every client gets the stored encoding (every
        current browser reads both; C(br) only over HTTPS), and a CDN such as Cloudflare
        passes it through instead of compressing for each client; leave C(none) behind a
        compressing CDN.
      - C(brotli) needs the C(brotli) Python package on the controller.
      - Files of I(multipart_threshold) or more are never compressed.
    type: str
    choices: [none, gzip, brotli]
    default: none
  workers:
    description:
      - Parallel requests (hashing, uploads, copies). Small files are bound by the round
        trip, not bandwidth; at 20 ms per request 32 workers upload 2,000 files in
        6.4 s where the AWS CLI's 10 take 10.2 s. Each worker holds at most one file
        below I(multipart_threshold) in memory; files above it go two at a time, each
        in up to 10 parallel parts.
    type: int
    default: 32
  multipart_threshold:
    description: Size from which files are uploaded in parts (C(8MB) means 8 MiB).
    type: bytes
    default: 8MB
  multipart_chunksize:
    description: Part size of multipart uploads.
    type: bytes
    default: 8MB
  retries:
    description:
      - Retries botocore makes per request after the first attempt on throttling, 5xx
        and connection errors. C(0) also disables the module's own restart of a file.
    type: int
    default: 5
  retry_mode:
    description: botocore retry mode; C(adaptive) also slows down the client when throttled.
    type: str
    choices: [standard, adaptive]
    default: adaptive
  create_bucket:
    description: Create the bucket when it does not exist (in I(region)).
    type: bool
    default: false
  acl:
    description:
      - Canned ACL of every object. Unset by default, as ACL-disabled buckets (the AWS
        default) reject ACLs; grant public read with a bucket policy or a CDN origin.
    type: str
    choices:
      - private
      - public-read
      - authenticated-read
      - bucket-owner-read
      - bucket-owner-full-control
  cdn_domain:
    description:
      - Domain of the CDN serving the bucket (Flask-S3's C(FLASKS3_CDN_DOMAIN)); used
        for I(env) and I(changed_urls).
    type: str
    default: ""
  manifest_key:
    description: Name of the manifest object, relative to the prefix.
    type: str
    default: .gantry-static-manifest.json
  endpoint_url:
    description: S3 endpoint of an S3-compatible service; unset means AWS.
    type: str
    aliases: [s3_url]
  region:
    description: Region of the bucket; unset uses the boto3 chain (C(AWS_REGION), profile).
    type: str
  aws_access_key_id:
    description: Access key; unset uses the boto3 credential chain.
    type: str
    aliases: [access_key]
  aws_secret_access_key:
    description: Secret key.
    type: str
    aliases: [secret_key]
  session_token:
    description: Session token of temporary credentials.
    type: str
  profile:
    description: Named profile of the AWS config files.
    type: str
  addressing_style:
    description: Bucket addressing; C(path) suits most S3-compatible servers.
    type: str
    choices: [auto, path, virtual]
    default: auto
  validate_certs:
    description: Verify the endpoint's TLS certificate.
    type: bool
    default: true
  state:
    description:
      - C(present) syncs the folders. C(absent) deletes every object the manifest
        records, then the manifest; objects this module did not write stay.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode (reports what would be uploaded, copied and deleted) and diff
    mode (keys with their hash and headers before and after).
  - Two runs on the same prefix at the same time are not coordinated; run it once per
    deploy (C(run_once)).
  - The manifest lists keys and hashes; it holds no secret but is as readable as the
    rest of the prefix.
seealso:
  - name: Flask-S3
    description: The extension whose key layout and settings this module follows.
    link: https://flask-s3.readthedocs.io/
"""

EXAMPLES = r"""
- name: Upload the static assets before switching the code
  s3_static_sync:
    bucket: example-assets
    prefix: shop
    region: eu-west-1
    cdn_domain: static.example.com
    release: "{{ flask_app_release.release_id }}"
    versioned: true
    keep_releases: 5
    grace_period: 86400
    folders:
      - path: /srv/build/venv/lib/python3.11/site-packages/shop/static
        url_path: /static
      - path: /srv/build/venv/lib/python3.11/site-packages/shop/catalog/static
        url_path: /catalog/static
    header_rules:
      - pattern: "*.woff2"
        cache_control: "public, max-age=31536000, immutable"
      - pattern: "^static/downloads/"
        match: regex
        content_disposition: attachment
  delegate_to: localhost
  run_once: true
  register: assets

- name: What would change on an S3-compatible server
  s3_static_sync:
    bucket: assets
    endpoint_url: https://minio.internal:9000
    addressing_style: path
    aws_access_key_id: "{{ vault_minio_key }}"
    aws_secret_access_key: "{{ vault_minio_secret }}"
    folders:
      - {path: "{{ build_dir }}/static", url_path: /static}
  check_mode: true
  diff: true
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
release:
  description: Release id the assets were recorded under.
  returned: always
  type: str
  sample: 3f2a9b1c07de
releases:
  description: Release ids whose assets are kept, newest first.
  returned: when state is present
  type: list
  elements: str
  sample: [3f2a9b1c07de, 9d01c4aa52f3]
files:
  description: Local files found.
  returned: when state is present
  type: int
  sample: 2000
bytes:
  description: Total size of the local files.
  returned: when state is present
  type: int
  sample: 8123456
uploaded:
  description: Objects uploaded (or that would be, in check mode).
  returned: always
  type: int
  sample: 20
uploaded_bytes:
  description: Bytes sent for them, after compression.
  returned: always
  type: int
  sample: 81234
headers_updated:
  description: Objects whose headers were re-applied by a copy in place.
  returned: always
  type: int
  sample: 0
copied:
  description: New objects copied from another key holding the same bytes (another asset version).
  returned: always
  type: int
  sample: 19
version:
  description: Asset version the objects were put under; empty unless I(versioned).
  returned: always
  type: str
  sample: v5c1e0d9a7b23
versions:
  description: Asset versions kept in the bucket (the current one and those kept releases use).
  returned: when state is present
  type: list
  elements: str
  sample: [v5c1e0d9a7b23, v0a8f3e61c4d2]
unchanged:
  description: Objects left as they were.
  returned: always
  type: int
  sample: 1980
deleted:
  description: Stale objects deleted.
  returned: always
  type: int
  sample: 3
tagged:
  description: Stale objects tagged for a lifecycle rule.
  returned: always
  type: int
  sample: 0
kept_for_grace:
  description: Objects only earlier kept releases reference.
  returned: when state is present
  type: int
  sample: 3
bucket_created:
  description: Whether the bucket was (or would be) created.
  returned: always
  type: bool
  sample: false
seconds:
  description: Wall time of the module.
  returned: always
  type: float
  sample: 0.42
changed_urls:
  description:
    - Public URLs of objects that existed and now have other bytes or headers, for a CDN
      purge. Immutable (content-hashed) ones are left out unless their bytes changed,
      which also raises a warning. New and deleted objects are not listed.
  returned: always
  type: list
  elements: str
  sample: ["https://static.example.com/shop/static/css/app.css"]
env:
  description: FLASKS3_* settings the app needs for Flask-S3's url_for to point here.
  returned: always
  type: dict
  sample:
    FLASKS3_ACTIVE: "true"
    FLASKS3_BUCKET_NAME: example-assets
    FLASKS3_CDN_DOMAIN: static.example.com
    FLASKS3_PREFIX: shop
    FLASKS3_REGION: eu-west-1
    FLASKS3_USE_HTTPS: "true"
manifest_key:
  description: Key of the manifest object.
  returned: always
  type: str
  sample: shop/.gantry-static-manifest.json
"""

import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.gantry.deploy.plugins.module_utils.gantry_s3 import (
    HeaderPolicy,
    PlanError,
    derive_release,
    derive_version,
    dump_manifest,
    empty_manifest,
    flask_env,
    headers_digest,
    is_immutable,
    join_key,
    newest_version,
    next_releases,
    normalize_prefix,
    parse_manifest,
    place_in_version,
    plan_sync,
    prefix_scope,
    public_base_url,
    public_url,
    recorded_objects,
    release_keys,
    release_scoped,
    scan_folders,
    sha256_file,
    stale_keys,
)
from ansible_collections.gantry.deploy.plugins.module_utils.gantry_s3_io import (
    HAS_BOTO3,
    HAS_BROTLI,
    MISSING_BUCKET_CODES,
    S3Store,
    S3SyncError,
    describe,
    error_code,
)

if HAS_BOTO3:
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

DIFF_LINES = 500
HASH_BATCH = 64
STALE_TAG = ("gantry-stale", "true")


def describe_object(rec):
    if not rec:
        return "(absent)"
    if rec.get("pending"):
        return "(unfinished upload)"
    headers = " ".join("%s=%s" % kv for kv in sorted((rec.get("h") or {}).items()))
    return "sha256=%s %s" % ((rec.get("sha256") or "?")[:12], headers)


def hash_batch(files):
    for f in files:
        f.sha256 = sha256_file(f.path)


def diff_text(lines):
    if len(lines) > DIFF_LINES:
        lines = lines[:DIFF_LINES] + ["... %d more" % (len(lines) - DIFF_LINES)]
    return "\n".join(lines) + ("\n" if lines else "")


def listed(futures):
    """The objects the listing futures found, key -> (ETag, size)."""
    seen = {}
    for fut in futures:
        seen.update(fut.result())
    return seen


class Sync:
    def __init__(self, module):
        self.module = module
        p = module.params
        self.p = p
        self.started = time.monotonic()
        self.prefix = normalize_prefix(p["prefix"])
        self.scope = prefix_scope(self.prefix)
        self.manifest_key = join_key(self.prefix, p["manifest_key"])
        self.store = S3Store(
            p["bucket"],
            endpoint_url=p["endpoint_url"],
            region=p["region"],
            aws_access_key_id=p["aws_access_key_id"],
            aws_secret_access_key=p["aws_secret_access_key"],
            session_token=p["session_token"],
            profile=p["profile"],
            workers=p["workers"],
            retries=p["retries"],
            retry_mode=p["retry_mode"],
            addressing_style=p["addressing_style"],
            validate_certs=p["validate_certs"],
            multipart_threshold=p["multipart_threshold"],
            multipart_chunksize=p["multipart_chunksize"],
            acl=p["acl"],
        )
        self.set_env(self.prefix)
        self.bucket_created = False

    def set_env(self, prefix):
        p = self.p
        self.env = flask_env(
            p["bucket"],
            prefix,
            p["region"] or self.store.region,
            p["endpoint_url"],
            p["cdn_domain"],
            p["addressing_style"],
        )
        self.base_url = public_base_url(self.env)

    def result(self, **kw):
        out = {
            "uploaded": 0,
            "uploaded_bytes": 0,
            "headers_updated": 0,
            "unchanged": 0,
            "copied": 0,
            "deleted": 0,
            "tagged": 0,
            "changed_urls": [],
            "bucket_created": self.bucket_created,
            "env": self.env,
            "manifest_key": self.manifest_key,
            "version": "",
        }
        out.update(kw)
        out["seconds"] = round(time.monotonic() - self.started, 3)
        return out

    def read_manifest(self):
        """Fetch the manifest; a missing bucket is created (or reported) here, as the
        manifest GET is the first request."""
        try:
            raw = self.store.get_object_bytes(self.manifest_key)
        except ClientError as exc:
            if error_code(exc) not in MISSING_BUCKET_CODES or not self.p["create_bucket"]:
                raise
            self.bucket_created = True
            if not self.module.check_mode:
                self.store.create_bucket()
            return empty_manifest()
        return empty_manifest() if raw is None else parse_manifest(raw)

    def write_manifest(self, manifest):
        self.store.put_bytes(
            self.manifest_key, dump_manifest(manifest), "application/json", "no-store"
        )

    def trusted_objects(self, manifest, keys):
        """What the manifest says the bucket holds for ``keys``, when that can stand in
        for a listing (see verify_objects): every key recorded as written. A key it does
        not record may hold another tool's object, one left pending a half-written one;
        only a listing tells."""
        if self.p["verify_objects"]:
            return None
        recorded = recorded_objects(manifest, keys)
        return recorded if len(recorded) == len(keys) else None

    def submit_listing(self, pool, roots, cuts):
        """One ListObjectsV2 pass over ``roots``, cut at ``cuts`` (keys likely to be
        found) into ranges listed in parallel; returns the futures."""
        if self.bucket_created:
            return []
        ranges = self.store.list_ranges(roots, cuts)
        return [pool.submit(self.store.list_range, *r) for r in ranges]

    def list_roots(self, folders):
        roots = sorted({join_key(self.prefix, f["url_path"]) for f in folders})
        # A root inside another root is listed by it already.
        kept = [
            r
            for r in roots
            if not any(o != r and (o == "" or r.startswith(o + "/")) for o in roots)
        ]
        return [r + "/" if r else "" for r in kept]

    def run_absent(self):
        try:
            raw = self.store.get_object_bytes(self.manifest_key)
        except ClientError as exc:
            if error_code(exc) not in MISSING_BUCKET_CODES:
                raise
            raw = None
        if raw is None:
            return self.result(changed=False, release="")
        manifest = parse_manifest(raw)
        keys = stale_keys(manifest["objects"], [], self.scope, self.manifest_key)
        extra = {"diff": {"before": diff_text(keys), "after": ""}} if self.module._diff else {}
        if not self.module.check_mode:
            failed = self.store.delete(keys)
            if failed:
                manifest["objects"] = {k: v for k, v in manifest["objects"].items() if k in failed}
                self.write_manifest(manifest)
                raise S3SyncError(
                    "could not delete %d objects: %s"
                    % (len(failed), "; ".join("%s %s" % kv for kv in sorted(failed.items())[:5]))
                )
            self.store.delete([self.manifest_key])
        return self.result(changed=True, deleted=len(keys), release="", **extra)

    def run_present(self):
        p = self.p
        if not p["folders"]:
            raise S3SyncError("folders is required when state=present")
        files = scan_folders(p["folders"], self.prefix, p["include_hidden"], p["exclude"])
        if any(f.key == self.manifest_key for f in files):
            raise S3SyncError("a static file would overwrite the manifest %s" % self.manifest_key)
        keys = [f.key for f in files]
        with ThreadPoolExecutor(max_workers=p["workers"]) as pool:
            manifest = self.read_manifest()
            # What the bucket holds comes from the manifest where it can be trusted (see
            # verify_objects), else from a listing. Listing goes first into the pool, which
            # runs tasks in order, and hashing overlaps with it. Versioned, what to list
            # depends on the version, which needs the hashes: most deploys change code,
            # not assets, so the newest release's version is listed meanwhile, and
            # dropped if the hashes disagree.
            listing = []
            guess = None
            trusted = None
            if not p["versioned"]:
                trusted = self.trusted_objects(manifest, keys)
                if trusted is None:
                    listing = self.submit_listing(pool, self.list_roots(p["folders"]), keys)
            elif p["verify_objects"]:
                guess = newest_version(manifest)
                if guess:
                    listing = self.submit_listing(
                        pool,
                        [join_key(self.prefix, guess) + "/"],
                        manifest["versions"][guess]["keys"],
                    )
            # Batches: one future per small file cost more than hashing it.
            batches = [files[i : i + HASH_BATCH] for i in range(0, len(files), HASH_BATCH)]
            list(pool.map(hash_batch, batches))

            release = p["release"]
            policy = HeaderPolicy(
                p["header_rules"],
                p["default_cache_control"],
                p["immutable_cache_control"],
                p["immutable_pattern"],
                # Keys under a version never get other bytes: all of them are immutable.
                p["versioned"] or release_scoped(self.prefix, release),
                p["acl"],
            )
            for f in files:
                f.params, f.metadata = policy.headers(f.rel_key)
                f.digest = headers_digest(f.params, f.metadata, p["acl"])

            version = None
            roots = self.list_roots(p["folders"])
            if p["versioned"]:
                version = derive_version(files, p["compress"])
                place_in_version(files, self.prefix, version)
                keys = [f.key for f in files]
                self.set_env(join_key(self.prefix, version))
                # A version the manifest knows (a code-only deploy) needs only its own
                # keys checked; a new one also needs the other versions' objects, the
                # sources of its copies.
                known = version in manifest["versions"]
                roots = [join_key(self.prefix, version) + "/"]
                trusted = self.trusted_objects(manifest, keys) if known else None
                if trusted is None and version != guess:
                    if known:
                        listing = self.submit_listing(pool, roots, keys)
                    else:
                        listing = self.submit_listing(
                            pool, [self.scope], sorted(manifest["objects"])
                        )
            release = release or version or derive_release(files)
            seen = dict(trusted or {})
            seen.update(listed(listing))

            plan = plan_sync(files, manifest, seen, p["compress"])
            # A copy needs its source intact, which only a listing shows.
            if trusted is not None and any(a.kind == "copy" for a in plan.actions):
                seen = listed(self.submit_listing(pool, roots, keys))
                plan = plan_sync(files, manifest, seen, p["compress"])
            return self.apply(pool, plan, manifest, release, version)

    def apply(self, pool, plan, manifest, release, version):
        p = self.p
        check = self.module.check_mode
        before = manifest["objects"]
        # Records are replaced, never edited in place, so a shallow copy suffices.
        objects = dict(before)
        releases, versions = next_releases(
            manifest["releases"],
            release,
            [f.key for f in plan.files],
            p["keep_releases"],
            version=version,
            grace=p["grace_period"],
            versions=manifest["versions"],
        )
        current = set(release_keys(releases[0], versions))
        grace = set().union(*(release_keys(r, versions) for r in releases[1:])) - current

        extra = {}
        changed_urls = []
        for a in plan.actions:
            rec = before.get(a.file.key)
            if a.reason == "new":
                continue
            content_changed = bool(rec) and rec.get("sha256") not in (None, a.file.sha256)
            if is_immutable(a.file.params) and not content_changed:
                continue
            if is_immutable(a.file.params):
                self.module.warn(
                    "%s is served as immutable but its content changed; CDN and browser "
                    "caches may keep the old bytes for a year" % a.file.key
                )
            changed_urls.append(public_url(self.base_url, a.file.key))

        uploads = [a for a in plan.actions if a.kind == "upload"]
        copies = [a for a in plan.actions if a.kind == "copy"]
        failed = {}
        sent = 0
        if not check and plan.actions:
            if any(a.file.key not in objects for a in plan.actions):
                # Record keys before writing them, so an interrupted run leaves no
                # object the next run does not know it owns.
                for a in plan.actions:
                    objects.setdefault(a.file.key, {"pending": True})
                staged = dict(manifest, objects=objects)
                self.write_manifest(staged)
            sent, failed = self.execute(pool, uploads, copies, objects)
            if failed:
                self.write_manifest(dict(manifest, objects=objects))
                sample = "; ".join("%s: %s" % kv for kv in sorted(failed.items())[:5])
                raise S3SyncError(
                    "%d of %d objects failed, the next run resumes: %s"
                    % (len(failed), len(plan.actions), sample)
                )
        elif check:
            for a in uploads:
                sent += a.file.size
                objects[a.file.key] = self.record(a.file, None, a.file.size, None, a.compress)
            for a in copies:
                objects[a.file.key] = dict(
                    objects[a.source], h=a.file.params, hd=a.file.digest, sha256=a.file.sha256
                )

        stale = stale_keys(objects, releases, self.scope, self.manifest_key, versions)
        not_removed = {}
        if stale and not check:
            if p["stale_action"] == "delete":
                not_removed = self.store.delete(stale)
            else:
                list(pool.map(lambda k: self.store.tag_stale(k, *STALE_TAG), stale))
        for key in stale:
            if key not in not_removed:
                objects.pop(key, None)

        final = {
            "version": manifest["version"],
            "releases": releases,
            "objects": objects,
            "versions": versions,
        }
        manifest_changed = final != manifest
        if manifest_changed and not check:
            self.write_manifest(final)
        if not_removed:
            raise S3SyncError(
                "could not delete %d stale objects: %s"
                % (
                    len(not_removed),
                    "; ".join("%s %s" % kv for kv in sorted(not_removed.items())[:5]),
                )
            )

        if self.module._diff:
            extra["diff"] = {
                "before_header": "s3://%s/%s" % (p["bucket"], self.scope),
                "after_header": "s3://%s/%s (release %s%s)"
                % (p["bucket"], self.scope, release, ", assets %s" % version if version else ""),
                "before": diff_text(
                    [
                        "%s %s" % (a.file.key, describe_object(before.get(a.file.key)))
                        for a in plan.actions
                    ]
                    + ["%s %s" % (k, describe_object(before.get(k))) for k in stale]
                ),
                "after": diff_text(
                    [
                        "%s %s" % (a.file.key, describe_object(objects.get(a.file.key)))
                        for a in plan.actions
                    ]
                    + [
                        "%s (%s)" % (k, "tagged stale" if p["stale_action"] == "tag" else "deleted")
                        for k in stale
                    ]
                ),
            }
        return self.result(
            **extra,
            changed=bool(plan.actions or stale or manifest_changed or self.bucket_created),
            release=release,
            releases=[r["id"] for r in releases],
            version=version or "",
            versions=sorted(versions),
            files=len(plan.files),
            bytes=sum(f.size for f in plan.files),
            uploaded=len(uploads),
            uploaded_bytes=sent,
            headers_updated=len([a for a in copies if a.source == a.file.key]),
            copied=len([a for a in copies if a.source != a.file.key]),
            unchanged=len(plan.unchanged),
            deleted=len(stale) - len(not_removed) if p["stale_action"] == "delete" else 0,
            tagged=len(stale) if p["stale_action"] == "tag" else 0,
            kept_for_grace=len(grace),
            changed_urls=sorted(changed_urls),
        )

    @staticmethod
    def record(f, etag, size, encoding, zmode):
        rec = {"sha256": f.sha256, "size": size, "etag": etag, "hd": f.digest, "h": f.params}
        if f.metadata:
            rec["m"] = f.metadata
        if encoding:
            rec["enc"] = encoding
        if zmode:
            rec["zmode"] = zmode
        return rec

    def execute(self, pool, uploads, copies, objects):
        """Run uploads and copies in parallel; update ``objects`` for each success and
        return (bytes sent, {key: error} for failures)."""

        def do_upload(a):
            etag, size, enc = self.store.upload(a.file, a.compress)
            return self.record(a.file, etag, size, enc, a.compress), size

        def do_copy(a):
            rec = objects[a.source]
            etag = self.store.copy(a.file, a.source, rec.get("enc"))
            return self.record(a.file, etag, rec["size"], rec.get("enc"), rec.get("zmode")), 0

        futures = [(a, pool.submit(do_upload, a)) for a in uploads]
        futures += [(a, pool.submit(do_copy, a)) for a in copies]
        sent = 0
        failed = {}
        for a, fut in futures:
            try:
                rec, size = fut.result()
            except (BotoCoreError, ClientError, S3UploadFailedError, OSError) as exc:
                failed[a.file.key] = describe(exc, self.p["bucket"], self.p["endpoint_url"])
                continue
            objects[a.file.key] = rec
            sent += size
        return sent, failed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            bucket=dict(type="str", required=True),
            prefix=dict(type="str", default=""),
            folders=dict(
                type="list",
                elements="dict",
                options=dict(
                    path=dict(type="path", required=True),
                    url_path=dict(type="str", required=True),
                ),
            ),
            release=dict(type="str", default=""),
            keep_releases=dict(type="int", default=2),
            grace_period=dict(type="int", default=0),
            versioned=dict(type="bool", default=False),
            verify_objects=dict(type="bool", default=False),
            stale_action=dict(type="str", choices=["delete", "tag"], default="delete"),
            include_hidden=dict(type="bool", default=False),
            exclude=dict(type="list", elements="str", default=[]),
            header_rules=dict(
                type="list",
                elements="dict",
                default=[],
                aliases=["headers"],
                options=dict(
                    pattern=dict(type="str", required=True),
                    match=dict(type="str", choices=["glob", "regex"], default="glob"),
                    cache_control=dict(type="str"),
                    content_type=dict(type="str"),
                    content_disposition=dict(type="str"),
                    content_language=dict(type="str"),
                    metadata=dict(type="dict"),
                ),
            ),
            default_cache_control=dict(type="str", default="public, max-age=300"),
            immutable_cache_control=dict(type="str", default="public, max-age=31536000, immutable"),
            immutable_pattern=dict(type="str", default=r"[.-][0-9a-fA-F]{8,64}(\.[A-Za-z0-9]+)+$"),
            compress=dict(type="str", choices=["none", "gzip", "brotli"], default="none"),
            workers=dict(type="int", default=32),
            multipart_threshold=dict(type="bytes", default="8MB"),
            multipart_chunksize=dict(type="bytes", default="8MB"),
            retries=dict(type="int", default=5),
            retry_mode=dict(type="str", choices=["standard", "adaptive"], default="adaptive"),
            create_bucket=dict(type="bool", default=False),
            acl=dict(
                type="str",
                choices=[
                    "private",
                    "public-read",
                    "authenticated-read",
                    "bucket-owner-read",
                    "bucket-owner-full-control",
                ],
            ),
            cdn_domain=dict(type="str", default=""),
            manifest_key=dict(type="str", default=".gantry-static-manifest.json", no_log=False),
            endpoint_url=dict(type="str", aliases=["s3_url"]),
            region=dict(type="str"),
            aws_access_key_id=dict(type="str", aliases=["access_key"], no_log=True),
            aws_secret_access_key=dict(type="str", aliases=["secret_key"], no_log=True),
            session_token=dict(type="str", no_log=True),
            profile=dict(type="str"),
            addressing_style=dict(type="str", choices=["auto", "path", "virtual"], default="auto"),
            validate_certs=dict(type="bool", default=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ("folders",))],
        supports_check_mode=True,
    )
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"))
    if module.params["compress"] == "brotli" and not HAS_BROTLI:
        module.fail_json(msg=missing_required_lib("brotli"))
    p = module.params
    if min(p["keep_releases"], p["retries"], p["grace_period"]) < 0 or p["workers"] < 1:
        module.fail_json(
            msg="keep_releases, retries and grace_period must be >= 0 and workers >= 1"
        )
    if p["multipart_chunksize"] < 5 * 1024 * 1024:
        module.fail_json(msg="multipart_chunksize must be at least 5MB (an S3 limit)")
    try:
        sync = Sync(module)
        result = sync.run_present() if p["state"] == "present" else sync.run_absent()
    except (PlanError, S3SyncError) as exc:
        module.fail_json(msg=str(exc))
    except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
        module.fail_json(msg=describe(exc, p["bucket"], p["endpoint_url"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
