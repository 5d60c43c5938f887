"""The benchmark's invariant checks catch what they are there to catch."""

from __future__ import annotations

import uuid

from flashsale.keys import SaleKeys

from flashsale.invariants import check_admission
from tests.conftest import Platform


def test_admission_check_passes_on_real_reservations(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=5)
    for _ in range(3):
        platform.stock.reserve(sale, "ann", 1, str(uuid.uuid4()))
    assert check_admission(platform.stock.client, "t", sale, accepted=3).ok
    # The load generator may stop counting with answers still on their way.
    assert check_admission(platform.stock.client, "t", sale, accepted=2, in_flight=1).ok
    assert not check_admission(platform.stock.client, "t", sale, accepted=2).ok


def test_admission_check_fails_loudly_on_oversell(platform: Platform) -> None:
    sale = platform.sale(stock=2, perUserLimit=5)
    platform.stock.reserve(sale, "ann", 2, str(uuid.uuid4()))
    # As if a broken script had admitted a third unit past the stock.
    platform.stock.client.set(SaleKeys(sale).stock, -1)
    platform.stock.client.hincrby(SaleKeys(sale).meta, "inflight", 1)
    check = check_admission(platform.stock.client, "t", sale, accepted=3)
    assert not check.ok
    assert "OVERSOLD" in check.detail and "negative" in check.detail
