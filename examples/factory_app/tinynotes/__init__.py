"""tinynotes: a small notes app, built by create_app()."""

import os

from flask import Flask, redirect, url_for

from . import config, jobs, notes


def create_app(config_name=None):
    """The app for a named configuration (see config.BY_NAME).

    Without a name, $TINYNOTES_CONFIG, else "development".
    """
    name = config_name or os.environ.get("TINYNOTES_CONFIG", "development")
    if name not in config.BY_NAME:
        raise ValueError(
            "unknown configuration %r; one of %s" % (name, ", ".join(sorted(config.BY_NAME)))
        )
    app = Flask(__name__, static_url_path="/assets")
    app.config.from_object(config.BY_NAME[name])
    app.config["CONFIG_NAME"] = name

    @app.get("/-/ping")
    def ping():
        return "pong\n", 200, {"Content-Type": "text/plain; charset=utf-8"}

    @app.get("/")
    def home():
        return redirect(url_for("notes.index"))

    app.register_blueprint(notes.bp)
    app.register_blueprint(jobs.bp)
    return app
