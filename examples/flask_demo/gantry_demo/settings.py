"""Settings read from the environment (systemd EnvironmentFile= in production)."""

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

STRING_KEYS = (
    "SECRET_KEY",
    "FLASKS3_BUCKET_NAME",
    "FLASKS3_CDN_DOMAIN",
    "FLASKS3_PREFIX",
    "FLASKS3_REGION",
    "FLASKS3_ENDPOINT_URL",
    "FLASKS3_URL_STYLE",
)
BOOL_KEYS = ("FLASKS3_USE_HTTPS",)

# Only ever used when FLASK_DEBUG is on or under tests, never in production.
DEV_SECRET_KEY = "gantry-demo-dev-key"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    # A typo must stop the start-up, not silently pick a default.
    raise ValueError(f"{name}={value!r} is not a boolean (use true/false)")


def from_environ(environ: Mapping[str, str]) -> dict:
    """The app's settings found in ``environ``; empty values count as unset."""
    settings = {key: environ[key] for key in STRING_KEYS if environ.get(key)}
    for key in BOOL_KEYS:
        if environ.get(key):
            settings[key] = parse_bool(key, environ[key])
    return settings


# Where the orders live without DATABASE_URL: a file in systemd's StateDirectory= (which
# outlives releases), else in the app's instance folder (development).
SQLITE_FILE = "gantry-demo.sqlite3"


def database_uri(environ: Mapping[str, str]) -> str:
    """The SQLAlchemy URL of the orders database.

    DATABASE_URL first (``postgres://`` and ``postgresql://`` mean the psycopg 3 driver,
    the one the app ships; SQLAlchemy would pick psycopg2). Without it, SQLite in
    $STATE_DIRECTORY, which systemd sets for a unit with StateDirectory=: fine for one
    host, while several hosts need one database server they all reach, since the deploy
    migrates once per release, on one host. Else a relative SQLite path, which
    Flask-SQLAlchemy puts in the instance folder.
    """
    url = environ.get("DATABASE_URL", "").strip()
    if url:
        scheme, sep, rest = url.partition("://")
        if sep and scheme in ("postgres", "postgresql"):
            return "postgresql+psycopg://" + rest
        return url
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return "sqlite:///" + os.path.join(state, SQLITE_FILE)
    return "sqlite:///" + SQLITE_FILE


def s3_url_settings(config: Mapping) -> dict:
    """Settings Flask-S3's ``url_for`` needs but does not derive itself.

    Flask-S3 builds asset URLs from FLASKS3_BUCKET_DOMAIN (default s3.amazonaws.com)
    and ignores the region and endpoint, so URLs for an S3-compatible endpoint or a
    regional bucket would point at the wrong host without this.
    """
    derived = {}
    endpoint = config.get("FLASKS3_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        derived["FLASKS3_BUCKET_DOMAIN"] = parts.netloc + parts.path.rstrip("/")
        if "FLASKS3_USE_HTTPS" not in config:
            derived["FLASKS3_USE_HTTPS"] = parts.scheme == "https"
    elif config.get("FLASKS3_REGION"):
        derived["FLASKS3_BUCKET_DOMAIN"] = f"s3.{config['FLASKS3_REGION']}.amazonaws.com"
    return derived


def release_id(environ: Mapping[str, str]) -> str:
    """GANTRY_RELEASE_ID, else the REVISION file of the working directory.

    Gunicorn chdirs into the release directory, where the deploy writes REVISION.
    """
    if environ.get("GANTRY_RELEASE_ID"):
        return environ["GANTRY_RELEASE_ID"]
    try:
        return (Path.cwd() / "REVISION").read_text(encoding="utf-8").strip() or "unknown"
    except FileNotFoundError:
        return "unknown"
