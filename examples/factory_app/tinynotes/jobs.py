"""Background jobs in SQLite: migrations, a queue, a worker and a periodic job.

The database lives outside the code, at $TINYNOTES_DATABASE, else in the service's state
directory ($STATE_DIRECTORY, which systemd sets), else in the app's instance folder. Its
schema changes only through the numbered files in migrations/, applied in order by
``flask notes migrate``; the app itself never creates a table.

    flask notes migrate   # apply pending migrations (once per deploy, before new code serves)
    flask notes tick      # queue a digest job (run it from a timer)
    flask notes work      # process jobs until stopped (SIGTERM finishes the job in hand)
"""

import datetime
import os
import signal
import sqlite3
import time
from importlib import resources

import click
from flask import Blueprint, current_app, jsonify

bp = Blueprint("jobs", __name__, url_prefix="/jobs", cli_group="notes")


def database_path(app):
    explicit = os.environ.get("TINYNOTES_DATABASE")
    if explicit:
        return explicit
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return os.path.join(state or app.instance_path, "tinynotes.db")


def connect(app):
    path = database_path(app)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Autocommit: each statement is its own transaction unless BEGIN says otherwise.
    db = sqlite3.connect(path, timeout=10, isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def now():
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def migration_files():
    folder = resources.files(__package__) / "migrations"
    return sorted((f.name[: -len(".sql")], f) for f in folder.iterdir() if f.name.endswith(".sql"))


def applied_migrations(db):
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return []
    return [row["name"] for row in db.execute("SELECT name FROM schema_migrations ORDER BY name")]


@bp.cli.command("migrate")
def migrate():
    """Apply the migrations the database does not have yet, in order."""
    db = connect(current_app)
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied TEXT)")
    done = set(applied_migrations(db))
    pending = [(name, f) for name, f in migration_files() if name not in done]
    for name, f in pending:
        # One transaction per migration: a failed one leaves the database as it was.
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in f.read_text().split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, now()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        click.echo("applied %s" % name)
    if not pending:
        click.echo("up to date (%d migrations)" % len(done))


@bp.cli.command("tick")
def tick():
    """Queue a digest job."""
    db = connect(current_app)
    cursor = db.execute("INSERT INTO jobs (kind, queued) VALUES ('digest', ?)", (now(),))
    click.echo("queued job %d" % cursor.lastrowid)


def claim(db, worker):
    db.execute("BEGIN IMMEDIATE")
    row = db.execute(
        "SELECT id, kind FROM jobs WHERE state = 'pending' ORDER BY id LIMIT 1"
    ).fetchone()
    if row:
        db.execute(
            "UPDATE jobs SET state = 'running', worker = ? WHERE id = ?", (worker, row["id"])
        )
    db.execute("COMMIT")
    return row


def run_job(kind):
    if kind == "digest":
        return "%d notes" % len(current_app.config["NOTES"])
    raise ValueError("unknown job kind %r" % kind)


def process_next(db, worker):
    """Take the oldest pending job and run it; None when the queue is empty."""
    job = claim(db, worker)
    if job is None:
        return None
    try:
        result, state = run_job(job["kind"]), "done"
    except Exception as exc:  # noqa: BLE001 - a bad job must not stop the worker
        result, state = str(exc), "failed"
    db.execute(
        "UPDATE jobs SET state = ?, result = ?, finished = ? WHERE id = ?",
        (state, result, now(), job["id"]),
    )
    return job["id"], state, result


@bp.cli.command("work")
@click.option(
    "--idle", default=1.0, show_default=True, help="Seconds between polls of an empty queue."
)
def work(idle):
    """Process jobs until SIGTERM or SIGINT; the job in hand is finished first."""
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    db = connect(current_app)
    worker = "%s:%d" % (os.uname().nodename, os.getpid())
    click.echo("worker %s started" % worker, err=True)
    while not stopping:
        done = process_next(db, worker)
        if done is None:
            time.sleep(idle)
        else:
            click.echo("job %d %s: %s" % done, err=True)
    click.echo("worker %s stopped" % worker, err=True)


@bp.get("/")
def index():
    """The schema's migrations and the last jobs, as JSON."""
    db = connect(current_app)
    try:
        migrations = applied_migrations(db)
        if not migrations:
            return jsonify(error="the database has no schema: run flask notes migrate"), 503
        jobs = [dict(row) for row in db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT 20")]
    finally:
        db.close()
    return jsonify(migrations=migrations, jobs=jobs)
