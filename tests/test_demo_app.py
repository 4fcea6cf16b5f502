"""The demo app in examples/flask_demo: the contract the deploy roles and S3 uploader rely on."""

import importlib
import os
import re
import sqlite3
import sys
import time
from pathlib import Path
from unittest import mock
from urllib.parse import unquote, urlsplit

import boto3
import flask_s3
import pytest
from moto import mock_aws

DEMO_DIR = Path(__file__).resolve().parents[1] / "examples" / "flask_demo"
sys.path.insert(0, str(DEMO_DIR))

import gantry_demo  # noqa: E402
from gantry_demo import db, settings, views  # noqa: E402

APP_ENV = (*settings.STRING_KEYS, *settings.BOOL_KEYS, "GANTRY_RELEASE_ID", "FLASK_DEBUG")
PACKAGE = DEMO_DIR / "gantry_demo"
DESSERT_URL_PATH = "/catalog/static/img/products/cr%C3%A8me%20br%C3%BBl%C3%A9e.svg"
UPLOADED_KEYS = {
    "static/css/app.css",
    "static/js/app.js",
    "static/img/icons/gantry.svg",
    "catalog/static/img/products/crème brûlée.svg",
    "catalog/static/img/products/espresso.svg",
    "catalog/static/img/products/tarte-tatin.svg",
}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No app setting leaks in from the caller, or out to other tests; cwd has no REVISION."""
    with mock.patch.dict(os.environ):
        for key in APP_ENV:
            os.environ.pop(key, None)
        monkeypatch.chdir(tmp_path)
        yield


def make_app(**env):
    os.environ.update(env)
    return gantry_demo.create_app({"TESTING": True})


def asset_urls(html):
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def page_urls(app, *paths):
    client = app.test_client()
    urls = []
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        urls += asset_urls(response.get_data(as_text=True))
    return urls


def test_healthz_prefers_env_release_id(tmp_path):
    (tmp_path / "REVISION").write_text("from-file\n")
    response = make_app(GANTRY_RELEASE_ID="r-42").test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "release": "r-42"}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_reads_revision_file_once_per_app(tmp_path):
    revision = tmp_path / "REVISION"
    revision.write_text("abc123\n")
    app = make_app()
    revision.write_text("def456\n")
    assert app.test_client().get("/healthz").get_json()["release"] == "abc123"
    assert make_app().test_client().get("/healthz").get_json()["release"] == "def456"


def test_healthz_without_release_says_unknown():
    assert make_app().test_client().get("/healthz").get_json()["release"] == "unknown"


def test_secret_key_required_outside_debug_and_testing():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        gantry_demo.create_app()
    os.environ["SECRET_KEY"] = "s3cr3t"
    assert gantry_demo.create_app().config["SECRET_KEY"] == "s3cr3t"


def test_debug_gets_a_dev_secret_key():
    os.environ["FLASK_DEBUG"] = "1"
    assert gantry_demo.create_app().config["SECRET_KEY"] == settings.DEV_SECRET_KEY


def test_wsgi_loads_dotenv_without_overriding_the_environment(tmp_path):
    (tmp_path / ".env").write_text("SECRET_KEY=from-dotenv\nGANTRY_RELEASE_ID=from-dotenv\n")
    os.environ["GANTRY_RELEASE_ID"] = "from-systemd"
    sys.modules.pop("gantry_demo.wsgi", None)
    app = importlib.import_module("gantry_demo.wsgi").app
    assert app.config["SECRET_KEY"] == "from-dotenv"
    assert app.test_client().get("/healthz").get_json()["release"] == "from-systemd"


def test_static_files_served_locally_without_bucket():
    app = make_app()
    urls = page_urls(app, "/", "/catalog/")
    for expected in ("/static/css/app.css", "/static/js/app.js", DESSERT_URL_PATH):
        assert expected in urls
    client = app.test_client()
    for url in (u for u in urls if "/static/" in u):
        response = client.get(url)
        assert response.status_code == 200, url
        # /static/... is gantry_demo/static, /catalog/static/... is gantry_demo/catalog/static.
        assert response.data == (PACKAGE / unquote(url).lstrip("/")).read_bytes()
        response.close()


def test_static_urls_point_at_cdn_when_bucket_set():
    app = make_app(FLASKS3_BUCKET_NAME="demo-bucket", FLASKS3_CDN_DOMAIN="cdn.example.com")
    urls = page_urls(app, "/")
    assert "https://cdn.example.com/static/css/app.css" in urls
    assert "https://cdn.example.com/static/js/app.js" in urls
    assert "https://cdn.example.com" + DESSERT_URL_PATH in urls
    # Only static files move; links between pages stay on the app.
    assert "/catalog/" in urls
    assert not [u for u in urls if u.startswith("/") and "/static/" in u]


def test_s3_urls_keep_prefix_case_and_long_segments():
    # Flask-S3's own url_for lowercases this prefix and answers 400 for the long one.
    prefix = "Releases/" + "A" * 64
    app = make_app(
        FLASKS3_BUCKET_NAME="demo-bucket",
        FLASKS3_CDN_DOMAIN="cdn.example.com",
        FLASKS3_PREFIX=f"/{prefix}/",
    )
    assert f"https://cdn.example.com/{prefix}/static/css/app.css" in page_urls(app, "/")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"FLASKS3_ENDPOINT_URL": "http://127.0.0.1:9000", "FLASKS3_URL_STYLE": "path"},
            "http://127.0.0.1:9000/demo-bucket/static/css/app.css",
        ),
        (
            {"FLASKS3_REGION": "eu-west-3", "FLASKS3_USE_HTTPS": "false"},
            "http://demo-bucket.s3.eu-west-3.amazonaws.com/static/css/app.css",
        ),
    ],
)
def test_s3_urls_follow_endpoint_and_region(env, expected):
    assert expected in page_urls(make_app(FLASKS3_BUCKET_NAME="demo-bucket", **env), "/")


def test_invalid_boolean_stops_start_up():
    with pytest.raises(ValueError, match="FLASKS3_USE_HTTPS"):
        make_app(FLASKS3_BUCKET_NAME="demo-bucket", FLASKS3_USE_HTTPS="maybe")


def test_every_s3_asset_url_is_a_key_flask_s3_uploads():
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    app = make_app(
        FLASKS3_BUCKET_NAME="demo-bucket",
        FLASKS3_CDN_DOMAIN="cdn.example.com",
        FLASKS3_PREFIX="Site",
    )
    with mock_aws():
        flask_s3.create_all(app)
        listing = boto3.client("s3").list_objects_v2(Bucket="demo-bucket")
    keys = {obj["Key"] for obj in listing["Contents"]}
    assert keys == {f"Site/{key}" for key in UPLOADED_KEYS}
    cdn_urls = [u for u in page_urls(app, "/", "/catalog/") if u.startswith("https://cdn.")]
    # Between them the two pages use every static file, each under its uploaded key.
    assert {unquote(urlsplit(url).path).lstrip("/") for url in cdn_urls} == keys


def test_report_is_served_from_cache(monkeypatch):
    calls = []
    real = views.build_report

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(views, "build_report", counting)
    client = make_app().test_client()
    first, second = client.get("/report"), client.get("/report")
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    assert b"1007" in first.data
    assert len(calls) == 1


def test_db_connection_closed_at_teardown():
    app = make_app()
    with app.test_client() as client:
        response = client.get("/items")
        conn = db.get_db()  # the request's context is kept until the with block ends
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 3
    assert [item["sku"] for item in response.get_json()["items"]] == ["CB-001", "ES-002", "TA-003"]
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


def test_db_connection_opened_once_per_context():
    with make_app().app_context():
        assert db.get_db() is db.get_db()


def test_io_waits_like_a_database_call():
    client = make_app().test_client()
    started = time.perf_counter()
    response = client.get("/io")
    assert time.perf_counter() - started >= 0.045
    assert response.get_json()["waited_ms"] >= 45


def test_cpu_does_bounded_work():
    response = make_app().test_client().get("/cpu")
    assert response.get_json() == {"limit": 8_000, "primes": 1007}
