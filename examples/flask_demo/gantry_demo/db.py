"""A per-request SQLite connection: opened on first use, closed at app-context teardown."""

import sqlite3
from importlib.resources import files

from flask import Flask, g

# The demo's catalogue lives in memory and is rebuilt for each connection: the release
# directory is read-only to the app, and the point here is the connection lifecycle.
_SCHEMA = files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        conn = sqlite3.connect(":memory:")
        conn.row_factory = sqlite3.Row
        conn.executescript(_SCHEMA)
        g.db = conn
    return g.db


def close_db(exc: BaseException | None = None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
