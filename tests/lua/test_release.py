"""release.lua on its own, against the real Redis: a dead-lettered reservation gives its
units and its shopper's count back once, and never after it was stored."""

from __future__ import annotations

import uuid

from flashsale.sales import sale_status
from flashsale.stock import Outcome
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform


def reserve(platform: Platform, sale: str, user: str, quantity: int) -> str:
    order = str(uuid.uuid4())
    result = platform.stock.reserve(sale, user, quantity, order)
    assert result.outcome is Outcome.ACCEPTED, result
    return order


def test_release_returns_units_and_the_users_count_once(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=3)
    k, client = SaleKeys(sale), platform.redis
    order = reserve(platform, sale, "ann", 2)
    kept = reserve(platform, sale, "bob", 1)
    assert int(client.hget(k.meta, "inflight")) == 3

    assert platform.stock.release(sale, order) == 2
    assert platform.remaining(sale) == 4
    assert int(client.hget(k.meta, "inflight")) == 1
    assert client.hget(k.held, "ann") is None  # Ann may buy again
    assert client.hget(k.reservation(order), "state") == b"dead"
    assert client.zscore(k.outbox, order) is None
    assert client.zscore(k.outbox, kept) is not None

    assert platform.stock.release(sale, order) == 0  # a repeat returns nothing
    assert platform.remaining(sale) == 4
    status = sale_status(platform.sessions, platform.stock, sale)
    assert status is not None
    assert status.stock.remaining + status.stock.reserved == 5


def test_a_stored_reservation_is_never_released(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=3)
    order = reserve(platform, sale, "cy", 1)
    assert platform.stock.ack(sale, order) is True  # stored in SQL first
    assert platform.stock.release(sale, order) == 0
    assert platform.remaining(sale) == 4
    assert platform.redis.hget(SaleKeys(sale).reservation(order), "state") == b"persisted"
    # And the other way round: once released, an acknowledgement takes nothing.
    other = reserve(platform, sale, "dee", 1)
    assert platform.stock.release(sale, other) == 1
    assert platform.stock.ack(sale, other) is False
    assert platform.remaining(sale) == 4


def test_release_of_an_unknown_order_changes_nothing(platform: Platform) -> None:
    sale = platform.sale(stock=5)
    assert platform.stock.release(sale, str(uuid.uuid4())) == 0
    assert platform.remaining(sale) == 5
