"""A sale that Redis lost (deleted, or a Redis restarted without its data) is rebuilt from
SQL by applying it again: sold units stay sold, per-user counts hold, nothing returns twice."""

from __future__ import annotations

import uuid

import pytest

from flashsale.orders import pay_order
from flashsale.persist import persist_reservation
from flashsale.reaper import expire_due, reap
from flashsale.sales import InvalidSale, apply_sale, rebuild_sale, sale_status
from flashsale.spec import SaleSpec
from flashsale.stock import Outcome
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform
from tests.helpers.orders import make_due, order, reserve, restored


def forget_sale(platform: Platform, sale: str) -> None:
    client = platform.redis
    keys = list(client.scan_iter(match=SaleKeys(sale).pattern))
    assert keys
    client.delete(*keys)


def test_reapplying_a_sale_redis_lost_rebuilds_it_from_sql(platform: Platform) -> None:
    spec = {"sku": "R-1", "stock": 10, "perUserLimit": 2, "rateLimit": {"requestsPerSecond": 0}}
    sale = platform.sale(**spec)
    # Orders other tests of the session left due would be expired by the same call.
    expire_due(platform.sessions, 10_000)
    paid = order(platform, sale, "ann", 2)
    pay_order(platform.sessions, platform.stock, "ann", paid)
    due = order(platform, sale, "cat", 2)
    make_due(platform, sale)
    # The reaper expired cat's order, then died before returning the units.
    assert expire_due(platform.sessions, 100) == 1
    order(platform, sale, "bob", 1)  # pending payment

    forget_sale(platform, sale)
    remaining = apply_sale(platform.sessions, platform.stock, sale, SaleSpec.model_validate(spec))

    assert remaining == 7  # 10 minus ann's 2 and bob's 1; cat's 2 are unsold again
    status = sale_status(platform.sessions, platform.stock, sale)
    assert status is not None
    assert (status.stock.paid, status.stock.pending_payment, status.stock.remaining) == (2, 1, 7)
    assert restored(platform, sale) == {due}  # already counted as unsold
    # The reaper finishes its job without returning cat's units a second time.
    report = reap(platform.sessions, platform.stock, 100)
    assert report.restored == 0 and platform.remaining(sale) == 7
    assert all(row["restored_at"] for row in platform.orders(sale) if row["id"] == due)
    # Ann still holds her limit of 2; bob may take one more.
    assert (
        platform.stock.reserve(sale, "ann", 1, "00000000-0000-4000-8000-000000000001").outcome
        == Outcome.LIMIT_REACHED
    )
    assert (
        platform.stock.reserve(sale, "bob", 1, "00000000-0000-4000-8000-000000000002").outcome
        == Outcome.ACCEPTED
    )


def test_a_rebuilt_sale_cannot_drop_below_what_sql_sold(platform: Platform) -> None:
    spec = {"sku": "R-2", "stock": 4, "rateLimit": {"requestsPerSecond": 0}, "perUserLimit": 5}
    sale = platform.sale(**spec)
    order(platform, sale, "dan", 3)
    forget_sale(platform, sale)
    lower = SaleSpec.model_validate(spec | {"stock": 2})
    try:
        apply_sale(platform.sessions, platform.stock, sale, lower)
    except ValueError as exc:
        assert "3 units are in orders" in str(exc)
    else:
        raise AssertionError("stock below the sold units was accepted")
    assert not platform.redis.exists(SaleKeys(sale).meta)


def test_rebuild_waits_for_nothing_in_flight(platform: Platform) -> None:
    spec = {"sku": "R-3", "stock": 5, "rateLimit": {"requestsPerSecond": 0}}
    sale = platform.sale(**spec)
    order(platform, sale, "eve", 1)
    in_flight = reserve(platform, sale, "fay", 1)  # accepted, not yet in SQL
    with pytest.raises(InvalidSale, match="1 reservations are on their way to SQL"):
        rebuild_sale(platform.sessions, platform.stock, sale)
    assert platform.remaining(sale) == 3  # untouched, still selling
    persist_reservation(platform.sessions, platform.stock, sale, in_flight)
    platform.redis.set(SaleKeys(sale).stock, 5)  # Redis "forgot" both sales
    assert rebuild_sale(platform.sessions, platform.stock, sale) == 3
    assert platform.stock.reserve(sale, "eve", 1, str(uuid.uuid4())).outcome == (
        Outcome.LIMIT_REACHED
    )
