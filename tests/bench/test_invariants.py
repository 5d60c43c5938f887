"""The benchmark's invariant checks catch what they are there to catch."""

from __future__ import annotations

import uuid

from flashsale.invariants import check_admission
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform


def test_admission_check_passes_on_real_reservations(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=5)
    for _ in range(3):
        platform.stock.reserve(sale, "ann", 1, str(uuid.uuid4()))
    assert check_admission(platform.stock, "t", sale, accepted=3).passed
    # The load generator may stop counting with answers still on their way.
    assert check_admission(platform.stock, "t", sale, accepted=2, in_flight=1).passed
    assert not check_admission(platform.stock, "t", sale, accepted=2).passed


def test_admission_check_fails_loudly_on_oversell(platform: Platform) -> None:
    sale = platform.sale(stock=2, perUserLimit=5)
    platform.stock.reserve(sale, "ann", 2, str(uuid.uuid4()))
    # As if a broken script had admitted a third unit past the stock.
    platform.redis.set(SaleKeys(sale).stock, -1)
    platform.redis.hincrby(SaleKeys(sale).meta, "inflight", 1)
    check = check_admission(platform.stock, "t", sale, accepted=3)
    assert not check.passed
    assert "OVERSOLD" in check.detail and "negative" in check.detail
