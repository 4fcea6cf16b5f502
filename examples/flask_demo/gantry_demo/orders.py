"""Orders: rows in a database that outlives releases, its schema kept by Flask-Migrate.

The schema changes only through the migrations in gantry_demo/migrations, which a deploy
runs once, before any host serves the new code (the release phase: ``flask db upgrade``).
So the code of a release may rely on its own migrations having run.
"""

from datetime import UTC, datetime

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

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "sku": self.sku,
            "quantity": self.quantity,
            "created_at": self.created_at.isoformat(),
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
