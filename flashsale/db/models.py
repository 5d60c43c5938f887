"""Orders and sales in PostgreSQL: the durable record. Redis admits, SQL guarantees."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    EXPIRED = "expired"
    REJECTED = "rejected"


LIVE_STATUSES = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID)


class Base(DeclarativeBase):
    pass


class Sale(Base):
    __tablename__ = "sales"

    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    sku: Mapped[str] = mapped_column(String(255))
    stock: Mapped[int] = mapped_column(Integer)
    # Units in pending_payment or paid orders, kept in the same transactions that change
    # order status, so the oversell guard is one conditional UPDATE.
    live_units: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    per_user_limit: Mapped[int] = mapped_column(Integer)
    payment_timeout_seconds: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused: Mapped[bool] = mapped_column(default=False, server_default="false")
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint("stock >= 0", name="sales_stock_nonnegative"),
        CheckConstraint("live_units >= 0 AND live_units <= stock", name="sales_no_oversell"),
    )


class Order(Base):
    __tablename__ = "orders"

    # The reservation id from Redis: a redelivered task cannot create a second row.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    sale: Mapped[str] = mapped_column(ForeignKey("sales.name"), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reserved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set once the expired order's units are back in Redis; NULL means "still to return".
    restored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("quantity > 0", name="orders_quantity_positive"),
        CheckConstraint(
            "status IN ('pending_payment', 'paid', 'expired', 'rejected')",
            name="orders_status_known",
        ),
        Index("ix_orders_status_expires_at", "status", "expires_at"),
        Index(
            "ix_orders_unrestored",
            "expired_at",
            postgresql_where="status = 'expired' AND restored_at IS NULL",
        ),
    )


class DeadLetter(Base):
    """A reservation or task message that can never be stored, kept for an operator to
    read. Its units went back to stock when it was written. Text fields hold escaped
    values (`flashsale.deadletters.printable`): what could not be stored cannot be
    stored here either."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # One row per reservation, however often it is redelivered; NULL for a whole message.
    order_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, unique=True)
    sale: Mapped[str | None] = mapped_column(String(253), index=True)
    user_id: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[int | None] = mapped_column(Integer)
    units_returned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
