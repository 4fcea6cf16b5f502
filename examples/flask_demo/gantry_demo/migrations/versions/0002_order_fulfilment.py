"""Orders record when, and by which host, the worker fulfilled them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("fulfilled_by", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("fulfilled_by")
        batch.drop_column("fulfilled_at")
