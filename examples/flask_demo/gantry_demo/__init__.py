"""Gantry's demo Flask app."""

import os
from collections.abc import Mapping
from pathlib import Path

from flask import Flask

from . import catalog, db, orders, s3urls, settings, views
from .extensions import cache, database, migrate, s3

# Shipped inside the package, so every release carries the migrations its code needs.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_app(config: Mapping | None = None) -> Flask:
    """Build the app from the environment; ``config`` overrides it (tests use it)."""
    app = Flask(__name__)
    app.config.update(CACHE_TYPE="SimpleCache", CACHE_DEFAULT_TIMEOUT=60)
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_uri(os.environ)
    # A pooled connection may outlive a database restart; test it before use.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True}
    app.config.update(settings.from_environ(os.environ))
    app.config.update(config or {})

    if not app.config.get("SECRET_KEY"):
        if not (app.debug or app.testing):
            raise RuntimeError("SECRET_KEY must be set outside debug and testing")
        app.config["SECRET_KEY"] = settings.DEV_SECRET_KEY

    # Read once: gunicorn workers started after a reload build a new app and so
    # report the new release, while old workers finish with the old one.
    app.config["RELEASE_ID"] = settings.release_id(os.environ)

    cache.init_app(app)
    db.init_app(app)
    database.init_app(app)
    # SQLite alters a table by copying it; batch mode lets one migration serve both.
    migrate.init_app(app, database, directory=str(MIGRATIONS), render_as_batch=True)
    if app.config.get("FLASKS3_BUCKET_NAME"):
        app.config.update(settings.s3_url_settings(app.config))
        s3.init_app(app)
        s3urls.init_app(app)

    app.register_blueprint(views.bp)
    app.register_blueprint(catalog.bp)
    app.register_blueprint(orders.bp)
    return app
