"""Orders: persisting reservations idempotently, reading them, paying for them."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.models import Order, OrderStatus
from flashsale.deadletters import DEAD
from flashsale.persist import persist_reservation
from flashsale.sales import sale_names
from flashsale.stock import Stock

RESERVED = "reserved"  # accepted in Redis, not yet in SQL


log = logging.getLogger(__name__)


class UnknownOrder(LookupError):
    pass


class OrderClosed(Exception):
    """The order can no longer be paid; `status` says why (expired or rejected)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True, slots=True)
class Reservation:
    """An accepted reservation as the reserve script recorded it."""

    order_id: str
    sale: str
    user: str
    quantity: int
    reserved_at: datetime
    expires_at: datetime
    state: str

    @classmethod
    def from_hash(cls, sale: str, order_id: str, raw: dict[bytes, bytes]) -> Reservation:
        return cls(
            order_id=order_id,
            sale=sale,
            user=raw[b"user"].decode(),
            quantity=int(raw[b"qty"]),
            reserved_at=from_ms(int(raw[b"reserved_at"])),
            expires_at=from_ms(int(raw[b"expires_at"])),
            state=raw.get(b"state", b"reserved").decode(),
        )


@dataclass(frozen=True, slots=True)
class OrderView:
    order_id: str
    sale: str
    user: str
    quantity: int
    status: str
    expires_at: datetime


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def parse_order_id(order_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(order_id)
    except ValueError:
        return None


def find_reservation(
    sessions: sessionmaker[Session], stock: Stock, order_id: str
) -> Reservation | None:
    """The order id does not name its sale, so ask every sale's Redis keys at once."""
    found = stock.find_reservation(sale_names(sessions), order_id)
    return None if found is None else Reservation.from_hash(found[0], order_id, found[1])


def _stored_order(sessions: sessionmaker[Session], oid: uuid.UUID, user: str) -> OrderView | None:
    with sessions() as session:
        row = session.get(Order, oid)
    if row is None:
        return None
    if row.user_id != user:
        raise UnknownOrder(str(oid))
    return OrderView(str(oid), row.sale, row.user_id, row.quantity, row.status, row.expires_at)


def get_order(sessions: sessionmaker[Session], stock: Stock, user: str, order_id: str) -> OrderView:
    """The order as its owner sees it; anyone else gets UnknownOrder."""
    oid = parse_order_id(order_id)
    if oid is None:
        raise UnknownOrder(order_id)
    stored = _stored_order(sessions, oid, user)
    if stored is not None:
        return stored
    reservation = find_reservation(sessions, stock, str(oid))
    if reservation is None or reservation.user != user:
        raise UnknownOrder(order_id)
    if reservation.state != RESERVED:
        # A worker stored it between the two reads: SQL has the status that counts.
        stored = _stored_order(sessions, oid, user)
        if stored is not None:
            return stored
    return OrderView(
        str(oid),
        reservation.sale,
        reservation.user,
        reservation.quantity,
        # A dead letter was never stored and never will be: to its shopper, refused.
        OrderStatus.REJECTED if reservation.state == DEAD else RESERVED,
        reservation.expires_at,
    )


def _count_paid(stock: Stock, sale: str, user: str, units: int) -> None:
    """Tell Redis these units will never come back (a waiting room closes when no unit is
    left and none is held by an unpaid order). Lost, the room only closes later."""
    try:
        stock.mark_paid(sale, user, units)
    except redis.RedisError as exc:
        log.warning("paid units of sale %s not counted in Redis: %s", sale, exc)


def pay_order(sessions: sessionmaker[Session], stock: Stock, user: str, order_id: str) -> str:
    """Mark the order paid. One conditional UPDATE decides a race with the reaper."""
    view = get_order(sessions, stock, user, order_id)
    if view.status == OrderStatus.REJECTED:
        raise OrderClosed(OrderStatus.REJECTED)
    segment = stock.segment_of(view.sale, user)  # where the reservation lives
    if view.status == RESERVED and (
        persist_reservation(sessions, stock, segment, view.order_id) == DEAD
    ):
        raise OrderClosed(OrderStatus.REJECTED)
    oid = uuid.UUID(view.order_id)
    with sessions.begin() as session:
        paid = session.scalar(
            update(Order)
            .where(
                Order.id == oid,
                Order.user_id == user,
                Order.status == OrderStatus.PENDING_PAYMENT,
                Order.expires_at > func.now(),
            )
            .values(status=OrderStatus.PAID, paid_at=func.now())
            .returning(Order.id)
        )
        if paid is not None:
            _count_paid(stock, view.sale, user, view.quantity)
            return OrderStatus.PAID
        status = session.scalar(select(Order.status).where(Order.id == oid))
    if status is None:
        raise UnknownOrder(order_id)
    if status == OrderStatus.PAID:
        return OrderStatus.PAID
    # pending_payment past its deadline is as good as expired: the reaper will return it.
    raise OrderClosed(OrderStatus.REJECTED if status == OrderStatus.REJECTED else "expired")
