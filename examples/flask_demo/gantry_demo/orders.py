"""Orders: rows in a database that outlives releases, its schema kept by Flask-Migrate.

The schema changes only through the migrations in gantry_demo/migrations, which a deploy
runs once, before any host serves the new code (the release phase: ``flask db upgrade``).
So the code of a release may rely on its own migrations having run.

A placed order waits for the background worker (``flask orders work``, a process of its
own beside the web server), which fulfils it; ``flask orders report`` (run by a timer)
says how many wait and for how long.
"""

import signal
import socket
import threading
from datetime import UTC, datetime

import click
from alembic.migration import MigrationContext
from flask import Blueprint, request
from sqlalchemy import DateTime, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from .db import get_db
from .extensions import database

bp = Blueprint("orders", __name__, url_prefix="/orders")

MAX_QUANTITY = 99
LISTED = 20


class Order(database.Model):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fulfilled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    fulfilled_by: Mapped[str | None] = mapped_column(String(64))

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "sku": self.sku,
            "quantity": self.quantity,
            "created_at": self.created_at.isoformat(),
            "fulfilled_at": self.fulfilled_at.isoformat() if self.fulfilled_at else None,
            "fulfilled_by": self.fulfilled_by,
        }


def schema_revision() -> str | None:
    """The migration the database is at (alembic's version table), None before any."""
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_catalogued(sku: str) -> bool:
    return get_db().execute("SELECT 1 FROM items WHERE sku = ?", (sku,)).fetchone() is not None


@bp.get("/")
def index():
    newest = database.session.scalars(select(Order).order_by(Order.id.desc()).limit(LISTED)).all()
    return {
        "schema": schema_revision(),
        "count": database.session.scalar(select(func.count()).select_from(Order)),
        "orders": [order.as_dict() for order in newest],
    }


@bp.post("/")
def create():
    body = request.get_json(silent=True) or {}
    sku = body.get("sku")
    quantity = body.get("quantity", 1)
    if not isinstance(sku, str) or not is_catalogued(sku):
        return {"error": "sku must be one of the catalogue's"}, 400
    if type(quantity) is not int or not 1 <= quantity <= MAX_QUANTITY:
        return {"error": f"quantity must be a whole number from 1 to {MAX_QUANTITY}"}, 400
    order = Order(sku=sku, quantity=quantity, created_at=datetime.now(UTC))
    database.session.add(order)
    database.session.commit()
    return {"order": order.as_dict()}, 201


def fulfil_waiting(worker: str, limit: int = 10) -> list[int]:
    """Fulfil up to ``limit`` waiting orders, oldest first; the ids fulfilled.

    Rows another worker holds are skipped, not waited for (PostgreSQL's SKIP LOCKED), so
    workers on every host share the queue and none fulfils an order twice.
    """
    waiting = database.session.scalars(
        select(Order)
        .where(Order.fulfilled_at.is_(None))
        .order_by(Order.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for order in waiting:
        order.fulfilled_at = datetime.now(UTC)
        order.fulfilled_by = worker[:64]
    database.session.commit()
    return [order.id for order in waiting]


@bp.cli.command("work")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between looks.")
@click.option("--once", is_flag=True, help="Fulfil what waits now, then exit.")
def work(interval: float, once: bool) -> None:
    """Fulfil waiting orders until stopped; SIGTERM lets the current batch finish."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    worker = socket.gethostname()
    click.echo(f"worker on {worker}: fulfilling orders every {interval} s")
    while not stopping.is_set():
        for order_id in fulfil_waiting(worker):
            click.echo(f"fulfilled order {order_id}")
        if once:
            break
        stopping.wait(interval)
    click.echo("worker stopped")


@bp.cli.command("report")
def report() -> None:
    """Say how many orders there are, how many wait, and the oldest wait."""
    total = database.session.scalar(select(func.count()).select_from(Order))
    waiting = database.session.scalar(
        select(func.count()).select_from(Order).where(Order.fulfilled_at.is_(None))
    )
    oldest = database.session.scalar(
        select(func.min(Order.created_at)).where(Order.fulfilled_at.is_(None))
    )
    line = f"orders: {total}, waiting: {waiting}"
    if oldest is not None:
        # SQLite hands back naive datetimes; the app writes UTC.
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        line += f", oldest waiting {(datetime.now(UTC) - oldest).total_seconds():.0f} s"
    click.echo(line)
