"""restore.lua on its own, against the real Redis: an expired order's units go back once."""

from __future__ import annotations

import uuid

from flashsale.stock import Outcome
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform


def new_id() -> str:
    return str(uuid.uuid4())


def reserve(platform: Platform, sale: str, user: str, quantity: int) -> str:
    order = new_id()
    result = platform.stock.reserve(sale, user, quantity, order)
    assert result.outcome is Outcome.ACCEPTED, result
    return order


def state(platform: Platform, sale: str, order: str) -> str | None:
    raw = platform.redis.hget(SaleKeys(sale).reservation(order), "state")
    return raw.decode() if raw is not None else None


def test_restore_returns_units_once(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=2)
    k = SaleKeys(sale)
    client = platform.redis
    order = reserve(platform, sale, "alice", 2)
    assert platform.stock.ack(sale, order) is True  # the usual path: persisted, then expired
    assert platform.remaining(sale) == 3

    assert platform.stock.restore(sale, order, "alice", 2) == 1
    assert platform.remaining(sale) == 5
    assert client.hget(k.held, "alice") is None
    assert state(platform, sale, order) == "expired"
    assert client.sismember(k.restored, order)

    assert platform.stock.restore(sale, order, "alice", 2) == 0
    assert platform.remaining(sale) == 5
    assert client.hget(k.held, "alice") is None

    # The user's limit is free again.
    reserve(platform, sale, "alice", 2)
    assert platform.remaining(sale) == 3
    assert client.hget(k.held, "alice") == b"2"
    # ...and a late duplicate restore of the old order does not touch the new holding.
    assert platform.stock.restore(sale, order, "alice", 2) == 0
    assert client.hget(k.held, "alice") == b"2"
    assert platform.remaining(sale) == 3


def test_restore_is_per_order(platform: Platform) -> None:
    sale = platform.sale(stock=10, perUserLimit=3)
    k = SaleKeys(sale)
    client = platform.redis
    first = reserve(platform, sale, "alice", 1)
    second = reserve(platform, sale, "alice", 2)
    bob = reserve(platform, sale, "bob", 1)
    assert platform.remaining(sale) == 6

    assert platform.stock.restore(sale, first, "alice", 1) == 1
    assert platform.remaining(sale) == 7
    assert client.hget(k.held, "alice") == b"2"
    assert state(platform, sale, second) == "reserved"

    assert platform.stock.restore(sale, second, "alice", 2) == 1
    assert platform.remaining(sale) == 9
    assert client.hget(k.held, "alice") is None
    # Other users' holdings and orders are untouched.
    assert client.hget(k.held, "bob") == b"1"
    assert state(platform, sale, bob) == "reserved"


def test_restore_without_the_reservation_hash(platform: Platform) -> None:
    sale = platform.sale(stock=5)
    k = SaleKeys(sale)
    client = platform.redis
    order = reserve(platform, sale, "alice", 1)
    client.delete(k.reservation(order))

    assert platform.stock.restore(sale, order, "alice", 1) == 1
    assert platform.remaining(sale) == 5
    assert client.hget(k.held, "alice") is None
    # It does not recreate a half reservation hash.
    assert not client.exists(k.reservation(order))
    assert platform.stock.restore(sale, order, "alice", 1) == 0
    assert platform.remaining(sale) == 5


def test_restore_for_a_sale_gone_from_redis(platform: Platform) -> None:
    sale = f"gone-{uuid.uuid4().hex[:10]}"
    assert platform.stock.restore(sale, new_id(), "alice", 1) == -1
    # Nothing is created: no stock, no restored set, no holdings.
    assert platform.redis.keys(SaleKeys(sale).pattern) == []


def test_restore_after_the_sale_keys_were_deleted(platform: Platform) -> None:
    sale = platform.sale(stock=5)
    k = SaleKeys(sale)
    client = platform.redis
    order = reserve(platform, sale, "alice", 1)
    client.delete(*client.keys(k.pattern))

    assert platform.stock.restore(sale, order, "alice", 1) == -1
    assert client.keys(k.pattern) == []


def test_one_call_returns_many_orders_each_once(platform: Platform) -> None:
    """The reaper's batch: one call per sale, each order decided on its own."""
    sale = platform.sale(stock=10, perUserLimit=3)
    k = SaleKeys(sale)
    orders = [reserve(platform, sale, user, qty) for user, qty in (("a", 2), ("b", 1), ("a", 1))]
    assert platform.stock.ack_many(sale, dict.fromkeys(orders, False)) == 3
    assert platform.stock.restore(sale, orders[1], "b", 1) == 1  # one returned before
    assert platform.remaining(sale) == 7

    answers = platform.stock.restore_many(
        sale, [(orders[0], "a", 2), (orders[1], "b", 1), (orders[2], "a", 1)]
    )

    assert answers == [1, 0, 1]
    assert platform.remaining(sale) == 10
    assert platform.redis.hget(k.held, "a") is None
    assert int(platform.redis.hget(k.meta, "live")) == 0
    assert platform.stock.returned_orders(sale) == set(orders)
    assert platform.stock.restore_many(sale, [(orders[0], "a", 2)]) == [0]
    assert platform.stock.restore_many(sale, []) == []
