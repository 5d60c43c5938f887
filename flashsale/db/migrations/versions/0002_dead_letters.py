"""Dead letters: reservations and task messages that can never be stored.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Uuid, unique=True),
        sa.Column("sale", sa.String(253)),
        sa.Column("user_id", sa.Text),
        sa.Column("quantity", sa.Integer),
        sa.Column("units_returned", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_index("ix_dead_letters_sale", "dead_letters", ["sale"])


def downgrade() -> None:
    op.drop_table("dead_letters")
