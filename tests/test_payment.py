"""Paying for orders: before the worker persisted them, twice, by someone else, too late."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import text

from flashsale.orders import (
    OrderClosed,
    UnknownOrder,
    get_order,
    pay_order,
)
from flashsale.persist import persist_reservation
from flashsale.reaper import reap
from flashsale.sales import sale_status
from flashsale.stock import Outcome
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform


def reserve(platform: Platform, sale: str, user: str, qty: int = 1) -> str:
    """Accepted in Redis, with no task message: only Redis knows about it."""
    order_id = str(uuid.uuid4())
    result = platform.stock.reserve(sale, user, qty, order_id)
    assert result.outcome == Outcome.ACCEPTED, result
    return order_id


def pay(platform: Platform, user: str, order_id: str) -> str:
    return pay_order(platform.sessions, platform.stock, user, order_id)


def status_of(platform: Platform, user: str, order_id: str) -> str:
    return get_order(platform.sessions, platform.stock, user, order_id).status


def assert_at_rest(platform: Platform, sale: str) -> None:
    status = sale_status(platform.sessions, platform.stock, sale)
    assert status is not None
    s = status.stock
    assert s.paid + s.pending_payment + s.reserved + s.remaining == s.total, s


def test_paying_a_reservation_only_in_redis_persists_it(platform: Platform) -> None:
    sale = platform.sale(stock=4, perUserLimit=2)
    order_id = reserve(platform, sale, "alice", qty=2)
    assert platform.orders(sale) == []
    assert status_of(platform, "alice", order_id) == "reserved"

    assert pay(platform, "alice", order_id) == "paid"
    rows = platform.orders(sale)
    assert len(rows) == 1
    assert str(rows[0]["id"]) == order_id
    assert (rows[0]["user_id"], rows[0]["quantity"], rows[0]["status"]) == ("alice", 2, "paid")
    keys = SaleKeys(sale)
    client = platform.redis
    assert client.zscore(keys.outbox, order_id) is None
    assert int(client.hget(keys.meta, "inflight")) == 0
    assert status_of(platform, "alice", order_id) == "paid"

    # Paying twice answers paid again and changes nothing.
    assert pay(platform, "alice", order_id) == "paid"
    # A late worker delivery of the same reservation does not touch the paid order.
    assert persist_reservation(platform.sessions, platform.stock, sale, order_id) == "paid"
    assert [r["status"] for r in platform.orders(sale)] == ["paid"]
    assert int(client.hget(keys.meta, "inflight")) == 0
    assert platform.remaining(sale) == 2
    status = sale_status(platform.sessions, platform.stock, sale)
    assert status is not None
    assert (status.stock.paid, status.stock.pending_payment, status.stock.reserved) == (2, 0, 0)
    assert_at_rest(platform, sale)


def test_another_user_cannot_see_or_pay(platform: Platform) -> None:
    sale = platform.sale(stock=3)
    order_id = reserve(platform, sale, "bob")

    # Still only in Redis: another user neither sees it nor makes it persist.
    with pytest.raises(UnknownOrder):
        get_order(platform.sessions, platform.stock, "mallory", order_id)
    with pytest.raises(UnknownOrder):
        pay(platform, "mallory", order_id)
    assert platform.orders(sale) == []
    assert status_of(platform, "bob", order_id) == "reserved"

    # In SQL: the same.
    assert persist_reservation(platform.sessions, platform.stock, sale, order_id) == (
        "pending_payment"
    )
    with pytest.raises(UnknownOrder):
        pay(platform, "mallory", order_id)
    assert [r["status"] for r in platform.orders(sale)] == ["pending_payment"]
    assert pay(platform, "bob", order_id) == "paid"
    with pytest.raises(UnknownOrder):
        pay(platform, "mallory", order_id)

    for bogus in ("not-a-uuid", str(uuid.uuid4())):
        with pytest.raises(UnknownOrder):
            pay(platform, "bob", bogus)


def test_expired_order_cannot_be_paid(platform: Platform) -> None:
    sale = platform.sale(stock=3)
    order_id = reserve(platform, sale, "carol")
    assert persist_reservation(platform.sessions, platform.stock, sale, order_id) == (
        "pending_payment"
    )
    with platform.sessions.begin() as session:
        session.execute(
            text("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": uuid.UUID(order_id)},
        )

    # Past its deadline but not reaped yet: already too late.
    with pytest.raises(OrderClosed) as closed:
        pay(platform, "carol", order_id)
    assert closed.value.status == "expired"
    assert [r["status"] for r in platform.orders(sale)] == ["pending_payment"]

    reap(platform.sessions, platform.stock)
    assert [r["status"] for r in platform.orders(sale)] == ["expired"]
    with pytest.raises(OrderClosed) as closed:
        pay(platform, "carol", order_id)
    assert closed.value.status == "expired"
    assert status_of(platform, "carol", order_id) == "expired"
    assert platform.remaining(sale) == 3
    assert_at_rest(platform, sale)


def test_reservation_past_deadline_before_persisting(platform: Platform) -> None:
    sale = platform.sale(stock=2, paymentTimeoutSeconds=1)
    order_id = reserve(platform, sale, "dan")
    time.sleep(1.2)

    # The payment persists it first, and then finds its deadline gone.
    with pytest.raises(OrderClosed) as closed:
        pay(platform, "dan", order_id)
    assert closed.value.status == "expired"
    assert [r["status"] for r in platform.orders(sale)] == ["pending_payment"]
    assert platform.remaining(sale) == 1

    reap(platform.sessions, platform.stock)
    assert [r["status"] for r in platform.orders(sale)] == ["expired"]
    assert platform.remaining(sale) == 2
    assert status_of(platform, "dan", order_id) == "expired"
    assert_at_rest(platform, sale)
