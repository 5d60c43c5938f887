"""close.lua, and removing a sale's keys (SCAN + UNLINK), on the real Redis."""

from __future__ import annotations

import uuid

from flashsale.stock import Outcome
from flashsale.stock.keys import SaleKeys
from flashsale.stock.store import UNLINK_BATCH
from tests.conftest import Platform


def test_closing_refuses_new_reservations_and_counts_those_in_flight(platform: Platform) -> None:
    sale = platform.sale(stock=5)
    for user in ("u1", "u2"):
        assert platform.stock.reserve(sale, user, 1, str(uuid.uuid4())).outcome == "accepted"

    closed = platform.stock.close_sale(sale)

    assert closed.existed and closed.waiting == 2
    late = platform.stock.reserve(sale, "u3", 1, str(uuid.uuid4()))
    assert late.outcome == Outcome.ENDED
    assert platform.remaining(sale) == 3  # closing takes no units and returns none
    assert platform.stock.close_sale(sale) == closed  # closing twice is harmless


def test_closing_an_unknown_sale_creates_nothing(platform: Platform) -> None:
    sale = f"gone-{uuid.uuid4().hex[:8]}"
    closed = platform.stock.close_sale(sale)
    assert not closed.existed and closed.waiting == 0
    assert list(platform.redis.scan_iter(match=SaleKeys(sale).pattern)) == []


def test_removing_keys_takes_every_key_of_the_sale_and_no_other(platform: Platform) -> None:
    sale = platform.sale(stock=5)
    neighbour = platform.sale(name=sale + "x", stock=5)  # shares a prefix, not the hash tag
    client = platform.redis
    platform.stock.reserve(sale, "u1", 1, str(uuid.uuid4()), idempotency_key="k1")
    # Enough extra keys to need several UNLINK batches.
    extra = UNLINK_BATCH * 2 + 7
    with client.pipeline(transaction=False) as pipe:
        for i in range(extra):
            pipe.set(f"{SaleKeys(sale).prefix}rl:bulk-{i}", 1)
        pipe.execute()
    before = len(list(client.scan_iter(match=SaleKeys(sale).pattern)))
    assert before > extra

    removed = platform.stock.remove_sale(sale)

    assert removed == before
    assert list(client.scan_iter(match=SaleKeys(sale).pattern)) == []
    assert platform.remaining(neighbour) == 5
    assert client.exists(SaleKeys(neighbour).meta) == 1
