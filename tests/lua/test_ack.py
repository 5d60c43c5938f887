"""ack.lua on its own, against the real Redis: take a persisted order off the outbox once."""

from __future__ import annotations

import uuid

from flashsale.stock import Outcome
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform


def new_id() -> str:
    return str(uuid.uuid4())


def inflight(platform: Platform, sale: str) -> int:
    return int(platform.redis.hget(SaleKeys(sale).meta, "inflight") or 0)


def state(platform: Platform, sale: str, order: str) -> str | None:
    raw = platform.redis.hget(SaleKeys(sale).reservation(order), "state")
    return raw.decode() if raw is not None else None


def reserve(platform: Platform, sale: str, user: str, quantity: int) -> str:
    order = new_id()
    result = platform.stock.reserve(sale, user, quantity, order)
    assert result.outcome is Outcome.ACCEPTED, result
    return order


def test_ack_takes_the_order_off_the_outbox_once(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=2)
    k = SaleKeys(sale)
    client = platform.redis
    order = reserve(platform, sale, "alice", 2)
    assert inflight(platform, sale) == 2

    assert platform.stock.ack(sale, order) is True
    assert client.zscore(k.outbox, order) is None
    assert inflight(platform, sale) == 0
    assert state(platform, sale, order) == "persisted"

    assert platform.stock.ack(sale, order) is False
    assert inflight(platform, sale) == 0
    assert state(platform, sale, order) == "persisted"
    # A persisted order stays live: stock and holdings are not touched.
    assert platform.remaining(sale) == 3
    assert client.hget(k.held, "alice") == b"2"


def test_ack_decrements_inflight_only_by_its_own_order(platform: Platform) -> None:
    sale = platform.sale(stock=10, perUserLimit=3)
    k = SaleKeys(sale)
    first = reserve(platform, sale, "alice", 1)
    second = reserve(platform, sale, "bob", 3)
    assert inflight(platform, sale) == 4

    assert platform.stock.ack(sale, second) is True
    assert inflight(platform, sale) == 1
    assert platform.stock.ack(sale, second) is False
    assert inflight(platform, sale) == 1
    members = platform.redis.zrange(k.outbox, 0, -1)
    assert [m.decode() for m in members] == [first]
    assert state(platform, sale, first) == "reserved"

    assert platform.stock.ack(sale, first) is True
    assert inflight(platform, sale) == 0
    assert platform.redis.zcard(k.outbox) == 0


def test_ack_of_an_unknown_order_changes_nothing(platform: Platform) -> None:
    sale = platform.sale(stock=5)
    order = reserve(platform, sale, "alice", 1)
    stranger = new_id()
    assert platform.stock.ack(sale, stranger) is False
    assert inflight(platform, sale) == 1
    assert platform.redis.zcard(SaleKeys(sale).outbox) == 1
    assert state(platform, sale, order) == "reserved"
    assert not platform.redis.exists(SaleKeys(sale).reservation(stranger))


def test_rejected_releases_the_users_units_but_not_the_stock(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=1)
    k = SaleKeys(sale)
    client = platform.redis
    order = reserve(platform, sale, "alice", 1)
    bob = reserve(platform, sale, "bob", 1)
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.LIMIT_REACHED

    assert platform.stock.ack(sale, order, rejected=True) is True
    assert state(platform, sale, order) == "rejected"
    assert client.zscore(k.outbox, order) is None
    assert inflight(platform, sale) == 1  # bob's order is still in flight
    assert client.hget(k.held, "alice") is None
    assert client.hget(k.held, "bob") == b"1"
    # SQL refused those units because they do not exist: they are not given back.
    assert platform.remaining(sale) == 3

    # The user is no longer holding anything, so may buy again.
    again = reserve(platform, sale, "alice", 1)
    assert platform.remaining(sale) == 2
    assert client.hget(k.held, "alice") == b"1"

    # A second rejection of the same order releases nothing more.
    assert platform.stock.ack(sale, order, rejected=True) is False
    assert client.hget(k.held, "alice") == b"1"
    assert inflight(platform, sale) == 2
    assert state(platform, sale, again) == "reserved"
    assert state(platform, sale, bob) == "reserved"


def test_rejected_after_persisted_is_ignored(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=1)
    order = reserve(platform, sale, "alice", 1)
    assert platform.stock.ack(sale, order) is True
    assert platform.stock.ack(sale, order, rejected=True) is False
    assert state(platform, sale, order) == "persisted"
    assert platform.redis.hget(SaleKeys(sale).held, "alice") == b"1"


def test_units_move_from_inflight_to_live_in_one_step(platform: Platform) -> None:
    sale = platform.sale(stock=10, perUserLimit=5)
    meta = SaleKeys(sale).meta
    client = platform.redis

    def figures() -> tuple[int, int, int]:
        inflight_raw, live_raw = client.hmget(meta, "inflight", "live")
        return platform.remaining(sale), int(inflight_raw or 0), int(live_raw or 0)

    kept, refused, expired = (reserve(platform, sale, u, 2) for u in ("k", "r", "e"))
    assert figures() == (4, 6, 0)
    platform.stock.ack(sale, kept)
    platform.stock.ack(sale, kept)  # a repeat moves nothing
    assert figures() == (4, 4, 2)
    platform.stock.ack(sale, refused, rejected=True)  # rejected units are not live
    assert figures() == (4, 2, 2)
    platform.stock.ack(sale, expired)
    assert figures() == (4, 0, 4)
    assert platform.stock.restore(sale, expired, "e", 2) == 1
    assert figures() == (6, 0, 2)
    remaining, inflight_units, live = figures()
    assert remaining + inflight_units + live == 10 - 2  # the rejected units are gone
