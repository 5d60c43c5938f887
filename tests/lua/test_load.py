"""load.lua on its own, against the real Redis: stock is loaded once and never reset."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from flashsale.db.models import Sale
from flashsale.sales import InvalidSale
from flashsale.stock import Outcome, SoldInSql, StockLoadError
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform
from tests.helpers.limits import sale_limits

LIMITS = sale_limits()


def new_id() -> str:
    return str(uuid.uuid4())


def new_sale() -> str:
    return f"l-{uuid.uuid4().hex[:10]}"


def meta(platform: Platform, sale: str) -> dict[str, str]:
    raw = platform.redis.hgetall(SaleKeys(sale).meta)
    return {k.decode(): v.decode() for k, v in raw.items()}


def load(platform: Platform, sale: str, **changes: object) -> int:
    return platform.stock.load(sale, dataclasses.replace(LIMITS, **changes))


def take(platform: Platform, sale: str, quantity: int, user: str = "alice") -> str:
    order = new_id()
    result = platform.stock.reserve(sale, user, quantity, order)
    assert result.outcome is Outcome.ACCEPTED, result
    return order


def sql_stock(platform: Platform, sale: str) -> int:
    with platform.sessions() as session:
        row = session.get(Sale, sale)
        assert row is not None
        return row.stock


def test_first_load_sets_stock_and_settings(platform: Platform) -> None:
    sale = new_sale()
    assert load(platform, sale, total=7, starts_at_ms=123, ends_at_ms=456) == 7
    assert platform.remaining(sale) == 7
    m = meta(platform, sale)
    assert m["total"] == "7"
    assert m["sku"] == "SKU-L"
    assert m["starts"] == "123"
    assert m["ends"] == "456"
    assert m["paused"] == "0"
    assert m["limit"] == "5"
    assert float(m["rate"]) == 0
    assert m["burst"] == "1"
    assert m["timeout"] == "60"
    assert m["inflight"] == "0"
    assert m["closed"] == "0"


def test_same_total_again_changes_nothing(platform: Platform) -> None:
    sale = new_sale()
    assert load(platform, sale) == 10
    assert load(platform, sale) == 10
    take(platform, sale, 3)
    assert platform.remaining(sale) == 7

    assert load(platform, sale) == 7
    assert platform.remaining(sale) == 7
    assert meta(platform, sale)["total"] == "10"
    # In-flight units survive a reload too.
    assert meta(platform, sale)["inflight"] == "3"


def test_same_total_through_apply_sale_does_not_reset(platform: Platform) -> None:
    sale = platform.sale(stock=4)
    take(platform, sale, 1)
    assert platform.sale(sale, stock=4) == sale
    assert platform.remaining(sale) == 3


def test_higher_total_adds_the_difference_once(platform: Platform) -> None:
    sale = new_sale()
    load(platform, sale)
    take(platform, sale, 3)

    assert load(platform, sale, total=15) == 12
    assert load(platform, sale, total=15) == 12
    assert platform.remaining(sale) == 12
    assert meta(platform, sale)["total"] == "15"

    assert load(platform, sale, total=16) == 13
    assert platform.remaining(sale) == 13


def test_higher_total_through_apply_sale_twice(platform: Platform) -> None:
    sale = platform.sale(stock=5)
    take(platform, sale, 1)
    platform.sale(sale, stock=8)
    platform.sale(sale, stock=8)
    assert platform.remaining(sale) == 7
    assert sql_stock(platform, sale) == 8


def test_lower_total_while_enough_is_unsold(platform: Platform) -> None:
    sale = new_sale()
    load(platform, sale)
    take(platform, sale, 3)  # 7 left

    assert load(platform, sale, total=5) == 2
    assert platform.remaining(sale) == 2
    assert meta(platform, sale)["total"] == "5"
    # Down to exactly what is taken: nothing left for sale, still allowed.
    assert load(platform, sale, total=3) == 0
    assert platform.remaining(sale) == 0
    assert platform.stock.reserve(sale, "bob", 1, new_id()).outcome is Outcome.SOLD_OUT


def test_lower_total_below_what_is_taken_is_refused(platform: Platform) -> None:
    sale = new_sale()
    load(platform, sale)
    take(platform, sale, 3)

    with pytest.raises(StockLoadError):
        load(platform, sale, total=2, paused=True, per_user_limit=1)
    # A refused load changes nothing at all, settings included.
    assert platform.remaining(sale) == 7
    m = meta(platform, sale)
    assert m["total"] == "10"
    assert m["paused"] == "0"
    assert m["limit"] == "5"
    # A later, valid load still computes from the old total.
    assert load(platform, sale, total=12) == 9


def test_lower_total_through_apply_sale_is_invalid(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=3)
    take(platform, sale, 3)

    with pytest.raises(InvalidSale):
        platform.sale(sale, stock=2, perUserLimit=3)
    assert platform.remaining(sale) == 2
    assert meta(platform, sale)["total"] == "5"
    # The SQL row is left as it was too.
    assert sql_stock(platform, sale) == 5

    platform.sale(sale, stock=3, perUserLimit=3)
    assert platform.remaining(sale) == 0
    assert sql_stock(platform, sale) == 3


def test_settings_update_in_place(platform: Platform) -> None:
    sale = platform.sale(stock=5, paused=True, perUserLimit=1, paymentTimeoutSeconds=60)
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.PAUSED

    platform.sale(sale, stock=5, paused=False, perUserLimit=1, paymentTimeoutSeconds=60)
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.ACCEPTED
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.LIMIT_REACHED
    assert platform.remaining(sale) == 4

    platform.sale(sale, stock=5, perUserLimit=3, paymentTimeoutSeconds=30)
    m = meta(platform, sale)
    assert m["limit"] == "3" and m["timeout"] == "30" and m["paused"] == "0"
    result = platform.stock.reserve(sale, "alice", 2, new_id())
    assert result.outcome is Outcome.ACCEPTED
    reserved_at = int(
        platform.redis.hget(SaleKeys(sale).reservation(result.order_id or ""), "reserved_at") or 0
    )
    assert result.expires_at_ms == reserved_at + 30 * 1000
    assert platform.remaining(sale) == 2

    platform.sale(sale, stock=5, perUserLimit=3, paused=True)
    assert platform.stock.reserve(sale, "bob", 1, new_id()).outcome is Outcome.PAUSED
    assert platform.remaining(sale) == 2


def test_window_and_rate_update_in_place(platform: Platform) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    sale = platform.sale(stock=5, perUserLimit=5, startsAt=later)
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.NOT_STARTED

    platform.sale(
        sale,
        stock=5,
        perUserLimit=5,
        startsAt=earlier,
        rateLimit={"requestsPerSecond": 1, "burst": 1},
    )
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.ACCEPTED
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.RATE_LIMITED
    assert platform.remaining(sale) == 4

    platform.sale(
        sale,
        stock=5,
        perUserLimit=5,
        startsAt=(datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        endsAt=earlier,
    )
    assert platform.stock.reserve(sale, "bob", 1, new_id()).outcome is Outcome.ENDED
    assert platform.remaining(sale) == 4


def test_what_sql_sold_shapes_a_new_load_only(platform: Platform) -> None:
    sale = new_sale()
    sold = SoldInSql(live_units=4, held=(("ann", 3), ("bob", 1)), unreturned_expired=("e-1",))
    assert platform.stock.load(sale, LIMITS, sold) == 6
    keys = SaleKeys(sale)
    client = platform.redis
    assert meta(platform, sale)["live"] == "4" and meta(platform, sale)["inflight"] == "0"
    assert client.hgetall(keys.held) == {b"ann": b"3", b"bob": b"1"}
    assert client.smembers(keys.restored) == {b"e-1"}
    # Loaded already: what SQL says is not applied a second time.
    again = SoldInSql(live_units=9, held=(("cid", 5),), unreturned_expired=("e-2",))
    assert platform.stock.load(sale, LIMITS, again) == 6
    assert client.hget(keys.held, "cid") is None and client.scard(keys.restored) == 1


def test_a_new_load_below_what_sql_sold_is_refused(platform: Platform) -> None:
    sale = new_sale()
    with pytest.raises(StockLoadError, match="12 units are already taken"):
        platform.stock.load(sale, LIMITS, SoldInSql(live_units=12))
    assert not platform.redis.exists(SaleKeys(sale).meta)
