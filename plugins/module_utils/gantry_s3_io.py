# Copyright: Gantry contributors
# MIT License
"""boto3 side of s3_static_sync: client set-up, retries with backoff, and the few S3
calls the module makes (one GET for the manifest, one ListObjectsV2 pass, then PUT,
COPY and DELETE for what changed)."""

import gzip
import random
import threading
import time

try:
    import boto3
    import botocore.session
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False

try:
    import brotli

    HAS_BROTLI = True
except ImportError:
    HAS_BROTLI = False

from ansible_collections.gantry.deploy.plugins.module_utils.gantry_s3 import (
    MAX_COMPRESS_RATIO,
    MIN_COMPRESS_SIZE,
    SHA_METADATA_KEY,
)

# Error codes S3 and S3-compatible servers use for "slow down, try again".
RETRYABLE_CODES = frozenset(
    (
        "InternalError",
        "OperationAborted",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestLimitExceeded",
    )
)

CREDENTIAL_CODES = frozenset(
    (
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    )
)

MISSING_BUCKET_CODES = frozenset(("NoSuchBucket",))

# Multipart files uploaded at once, and part threads for each.
MULTIPART_FILES = 2
MULTIPART_CONCURRENCY = 10

# compress option -> (Content-Encoding, encoder). Both encoders are deterministic
# (gzip with mtime=0), so the same file gives the same bytes, hence the same ETag.
ENCODINGS = {
    "gzip": ("gzip", lambda raw: gzip.compress(raw, compresslevel=9, mtime=0)),
    "brotli": ("br", lambda raw: brotli.compress(raw, quality=11)),
}


class S3SyncError(Exception):
    """A failure worded for the person running the playbook."""


def error_code(exc):
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        return error_code(exc.__context__)
    return ""


def _status(exc):
    if isinstance(exc, ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        return _status(exc.__context__)
    return 0


def is_retryable(exc):
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return True
    return error_code(exc) in RETRYABLE_CODES or _status(exc) >= 500


def describe(exc, bucket, endpoint_url):
    """Turn a boto error into one line that says what to check."""
    where = "bucket %s at %s" % (bucket, endpoint_url or "AWS")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return (
            "No usable AWS credentials for %s: set aws_access_key_id and "
            "aws_secret_access_key, a profile, or the usual AWS_* environment (%s)" % (where, exc)
        )
    code = error_code(exc)
    if code in CREDENTIAL_CODES or (code == "" and _status(exc) == 403):
        return (
            "S3 refused the credentials for %s (%s): check aws_access_key_id, "
            "aws_secret_access_key, session_token or profile, and that they may "
            "read, list, write and delete objects there. %s" % (where, code or "403", exc)
        )
    if code in MISSING_BUCKET_CODES:
        return "The %s does not exist; set create_bucket=true to create it" % where
    return "S3 request failed for %s: %s" % (where, exc)


def with_backoff(call, attempts, base=0.5, cap=8.0):
    """Run ``call``; after botocore has used up its own retries, start it again from
    scratch (re-reading the file) up to ``attempts`` more times, sleeping a random
    0..min(cap, base*2^n) seconds in between ("full jitter")."""
    for attempt in range(attempts + 1):
        try:
            return call()
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            if attempt >= attempts or not is_retryable(exc):
                raise
            time.sleep(random.uniform(0, min(cap, base * 2**attempt)))
    raise AssertionError("unreachable")


class S3Store:
    def __init__(
        self,
        bucket,
        endpoint_url=None,
        region=None,
        aws_access_key_id=None,
        aws_secret_access_key=None,
        session_token=None,
        profile=None,
        workers=10,
        retries=5,
        retry_mode="adaptive",
        addressing_style="auto",
        validate_certs=True,
        multipart_threshold=8 * 1024 * 1024,
        multipart_chunksize=8 * 1024 * 1024,
        acl=None,
    ):
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.acl = acl
        self.multipart_threshold = multipart_threshold
        self.outer_attempts = min(2, retries)
        core = botocore.session.get_session()
        # Timestamps are never used, and parsing every LastModified with dateutil was a
        # third of a no-change run; the AWS CLI turns it off the same way.
        core.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=lambda value: value
        )
        session = boto3.session.Session(
            botocore_session=core,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=session_token,
            profile_name=profile,
            region_name=region,
        )
        self.region = session.region_name
        config = Config(
            retries={"total_max_attempts": retries + 1, "mode": retry_mode},
            max_pool_connections=workers + MULTIPART_FILES * MULTIPART_CONCURRENCY,
            s3={"addressing_style": addressing_style},
            connect_timeout=10,
            read_timeout=120,
            user_agent_extra="gantry-s3-static-sync",
        )
        self.client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=self.region or ("us-east-1" if endpoint_url else None),
            verify=validate_certs,
            config=config,
        )
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=min(MULTIPART_CONCURRENCY, workers),
            preferred_transfer_client="classic",
        )
        # Each multipart file runs its own part threads, each holding a part in memory:
        # a few at a time keep memory and connections bounded whatever `workers` is.
        self.multipart_slots = threading.BoundedSemaphore(MULTIPART_FILES)

    def _retry(self, call):
        return with_backoff(call, self.outer_attempts)

    def get_object_bytes(self, key):
        """Body of ``key``, or None when it does not exist."""
        try:
            resp = self._retry(lambda: self.client.get_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        return resp["Body"].read()

    @staticmethod
    def list_ranges(roots, local_keys, page=1000):
        """Cut one ListObjectsV2 pass over ``roots`` into key ranges that can be listed
        in parallel with list_range: a root holding more than ``page`` local keys is
        cut at every ``page``-th of them. The ranges cover the whole key space of each
        root, so keys that exist only remotely are seen too."""
        ranges = []
        for root in roots:
            mine = sorted(k for k in local_keys if k.startswith(root))
            edges = [None] + mine[page - 1 : len(mine) - 1 : page]
            for i, after in enumerate(edges):
                upto = edges[i + 1] if i + 1 < len(edges) else None
                ranges.append((root, after, upto))
        return ranges

    def list_range(self, root, after, upto):
        """{key: (etag, size)} for keys under ``root`` after ``after`` up to ``upto``."""
        kwargs = {"Bucket": self.bucket, "Prefix": root}
        if after is not None:
            kwargs["StartAfter"] = after
        found = {}
        while True:
            resp = self._retry(lambda kw=dict(kwargs): self.client.list_objects_v2(**kw))
            for obj in resp.get("Contents", ()):
                # S3 orders keys by UTF-8 bytes, which is code point order, as here.
                if upto is not None and obj["Key"] > upto:
                    return found
                found[obj["Key"]] = (obj.get("ETag"), obj.get("Size"))
            if not resp.get("IsTruncated"):
                return found
            kwargs["ContinuationToken"] = resp["NextContinuationToken"]

    def create_bucket(self):
        kwargs = {"Bucket": self.bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._retry(lambda: self.client.create_bucket(**kwargs))

    def put_bytes(self, key, data, content_type, cache_control):
        return self._retry(
            lambda: self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                CacheControl=cache_control,
            )
        )

    def _extra(self, params, metadata, sha256):
        extra = dict(params)
        extra["Metadata"] = dict(metadata, **{SHA_METADATA_KEY: sha256})
        if self.acl:
            extra["ACL"] = self.acl
        return extra

    def upload(self, f, compress):
        """Upload one LocalFile; return (etag, stored size, content encoding)."""
        extra = self._extra(f.params, f.metadata, f.sha256)
        body = None
        encoding = None
        if compress in ENCODINGS and MIN_COMPRESS_SIZE <= f.size < self.multipart_threshold:
            with open(f.path, "rb") as fh:
                raw = fh.read()
            header, encode = ENCODINGS[compress]
            packed = encode(raw)
            if len(packed) <= len(raw) * MAX_COMPRESS_RATIO:
                body, encoding = packed, header
                extra["ContentEncoding"] = header
        if body is not None:
            resp = self._retry(
                lambda: self.client.put_object(Bucket=self.bucket, Key=f.key, Body=body, **extra)
            )
            return resp["ETag"], len(body), encoding
        if f.size < self.multipart_threshold:
            # Bytes, not a file object: botocore sends "Expect: 100-continue" with file
            # bodies, which costs every small upload one more round trip.
            with open(f.path, "rb") as fh:
                data = fh.read()
            resp = self._retry(
                lambda: self.client.put_object(Bucket=self.bucket, Key=f.key, Body=data, **extra)
            )
            return resp["ETag"], len(data), None
        with self.multipart_slots:
            self._retry(
                lambda: self.client.upload_file(
                    f.path, self.bucket, f.key, ExtraArgs=extra, Config=self.transfer_config
                )
            )
        # The transfer manager does not return the multipart ETag; ask once.
        head = self._retry(lambda: self.client.head_object(Bucket=self.bucket, Key=f.key))
        return head["ETag"], head["ContentLength"], None

    def copy(self, f, source, encoding):
        """Write f's key from ``source`` inside the bucket with f's headers: onto itself
        when only headers change, from another key holding the same bytes otherwise."""
        extra = self._extra(f.params, f.metadata, f.sha256)
        if encoding:
            extra["ContentEncoding"] = encoding
        resp = self._retry(
            lambda: self.client.copy_object(
                Bucket=self.bucket,
                Key=f.key,
                CopySource={"Bucket": self.bucket, "Key": source},
                MetadataDirective="REPLACE",
                **extra,
            )
        )
        return resp["CopyObjectResult"]["ETag"]

    def delete(self, keys):
        """Delete keys in batches of 1000; return {key: error} for the ones that failed."""
        failed = {}
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            resp = self._retry(
                lambda b=batch: self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": b, "Quiet": True}
                )
            )
            for err in resp.get("Errors", ()):
                failed[err["Key"]] = "%s: %s" % (err.get("Code"), err.get("Message"))
        return failed

    def tag_stale(self, key, tag_key, tag_value):
        try:
            self._retry(
                lambda: self.client.put_object_tagging(
                    Bucket=self.bucket,
                    Key=key,
                    Tagging={"TagSet": [{"Key": tag_key, "Value": tag_value}]},
                )
            )
        except ClientError as exc:
            # Already gone: nothing left to expire.
            if error_code(exc) != "NoSuchKey":
                raise
