"""Sales and orders.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sales",
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("sku", sa.String(255), nullable=False),
        sa.Column("stock", sa.Integer, nullable=False),
        sa.Column("live_units", sa.Integer, nullable=False, server_default="0"),
        sa.Column("per_user_limit", sa.Integer, nullable=False),
        sa.Column("payment_timeout_seconds", sa.Integer, nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True)),
        sa.Column("ends_at", sa.DateTime(timezone=True)),
        sa.Column("paused", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("spec", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.CheckConstraint("stock >= 0", name="sales_stock_nonnegative"),
        sa.CheckConstraint("live_units >= 0 AND live_units <= stock", name="sales_no_oversell"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("sale", sa.String(253), sa.ForeignKey("sales.name"), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True)),
        sa.Column("expired_at", sa.DateTime(timezone=True)),
        sa.Column("restored_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.CheckConstraint("quantity > 0", name="orders_quantity_positive"),
        sa.CheckConstraint(
            "status IN ('pending_payment', 'paid', 'expired', 'rejected')",
            name="orders_status_known",
        ),
    )
    op.create_index("ix_orders_sale", "orders", ["sale"])
    op.create_index("ix_orders_status_expires_at", "orders", ["status", "expires_at"])
    op.create_index(
        "ix_orders_unrestored",
        "orders",
        ["expired_at"],
        postgresql_where=sa.text("status = 'expired' AND restored_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("orders")
    op.drop_table("sales")
