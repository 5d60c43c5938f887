"""A sale spread over segments, on one real Redis: each shopper decided in their home
segment, units borrowed between segments, nothing stranded, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
import redis.asyncio

from flashsale.stock import AsyncStock, Outcome, home, segment_name
from flashsale.stock.calls import Purchase
from tests.conftest import Platform


def new_id() -> str:
    return str(uuid.uuid4())


def users_homed(count: int, segments: int, where: int, prefix: str = "u") -> list[str]:
    """`count` user ids whose home segment is `where`."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        user = f"{prefix}{i}"
        if home(user, segments) == where:
            found.append(user)
        i += 1
    return found


def at_rest(platform: Platform, sale: str) -> None:
    """Units for sale + in flight + live == total, over every segment."""
    f = platform.stock.sale_in_redis(sale)
    assert f.total is not None
    assert f.remaining + f.inflight + f.live == f.total, f


def test_the_home_segment_is_the_one_the_script_computes(platform: Platform) -> None:
    sale = platform.sale(stock=40, segments=4, perUserLimit=5)
    stock = platform.stock
    for user in ("alice", "bob", "ü-carol", "d" * 200):
        right = home(user, 4)
        for k in range(4):
            result = stock.reserve(segment_name(sale, k, 4), user, 1, new_id())
            assert result.outcome is (Outcome.ACCEPTED if k == right else Outcome.MOVED), (user, k)
    assert platform.stock.segments(sale) == 4
    assert [platform.stock.segment_remaining(segment_name(sale, k, 4)) for k in range(4)] != [
        10
    ] * 4
    at_rest(platform, sale)


def test_stock_is_spread_evenly_and_read_as_a_whole(platform: Platform) -> None:
    sale = platform.sale(stock=10, segments=8)
    levels = [platform.stock.segment_remaining(segment_name(sale, k, 8)) for k in range(8)]
    assert levels == [2, 2, 1, 1, 1, 1, 1, 1]
    assert platform.stock.remaining(sale) == 10
    assert platform.stock.sale_in_redis(sale).total == 10


async def _stock(platform: Platform) -> AsyncStock:
    fast = AsyncStock(redis.asyncio.Redis.from_url(platform.redis_url))
    await fast.sync_clock()
    return fast


async def test_the_tail_is_sold_one_buyer_at_a_time_without_a_false_sold_out(
    platform: Platform,
) -> None:
    sale = platform.sale(stock=10, segments=8)
    fast = await _stock(platform)
    try:
        outcomes = []
        for i in range(14):
            result = await fast.reserve(sale, f"buyer-{i}", 1, new_id())
            outcomes.append(result.outcome)
        assert outcomes == [Outcome.ACCEPTED] * 10 + [Outcome.SOLD_OUT] * 4
        assert platform.stock.remaining(sale) == 0
        assert platform.stock.open_loans(sale) == []  # every loan credited and settled
        at_rest(platform, sale)
    finally:
        await fast.close()


async def test_a_crowd_takes_exactly_the_stock(platform: Platform) -> None:
    sale = platform.sale(stock=60, segments=6)
    fast = await _stock(platform)
    try:
        results = await asyncio.gather(
            *(fast.reserve(sale, f"c{i}", 1, new_id()) for i in range(200))
        )
        counts = Counter(r.outcome for r in results)
        assert counts == {Outcome.ACCEPTED: 60, Outcome.SOLD_OUT: 140}
        at_rest(platform, sale)
        assert platform.stock.outbox_size(sale) == 60
    finally:
        await fast.close()


async def test_the_per_user_limit_holds_across_segments_under_parallel_requests(
    platform: Platform,
) -> None:
    sale = platform.sale(stock=100, segments=6, perUserLimit=3)
    fast = await _stock(platform)
    try:
        results = await asyncio.gather(
            *(fast.reserve(sale, "greedy", 1, new_id()) for _ in range(50))
        )
        counts = Counter(r.outcome for r in results)
        assert counts == {Outcome.ACCEPTED: 3, Outcome.LIMIT_REACHED: 47}
    finally:
        await fast.close()


async def test_returned_units_are_bought_from_another_segment(platform: Platform) -> None:
    sale = platform.sale(stock=4, segments=2, perUserLimit=4)
    (first,) = users_homed(1, 2, 0, "first")
    (second,) = users_homed(1, 2, 1, "second")
    fast = await _stock(platform)
    try:
        orders = [new_id() for _ in range(4)]
        for order in orders:
            assert (await fast.reserve(sale, first, 1, order)).outcome is Outcome.ACCEPTED
        assert (await fast.reserve(sale, second, 1, new_id())).outcome is Outcome.SOLD_OUT
        # The first shopper's orders expire: their units return to the first's home.
        returned = platform.stock.restore_many(sale, [(o, first, 1) for o in orders])
        assert returned == [1, 1, 1, 1]
        assert platform.stock.segment_remaining(segment_name(sale, 0, 2)) == 4
        for _ in range(2):
            result = await fast.reserve(sale, second, 2, new_id())
            assert result.outcome is Outcome.ACCEPTED, result
        assert platform.stock.remaining(sale) == 0
        assert platform.stock.segment_remaining(segment_name(sale, 1, 2)) == 0
    finally:
        await fast.close()


def test_a_loan_whose_borrower_died_is_credited_once(platform: Platform) -> None:
    sale = platform.sale(stock=6, segments=3)
    stock = platform.stock
    loan = stock.lend(sale, lender=0, borrower=2, units=2)
    assert loan is not None and loan.units == 2
    # The borrower died here: the units are in transit, still counted for sale.
    assert stock.remaining(sale) == 6
    assert stock.segment_remaining(segment_name(sale, 0, 3)) == 0
    assert stock.settle_stale_loans(sale, older_than_ms=60_000) == 0  # too young
    assert stock.settle_stale_loans(sale, older_than_ms=0) == 1
    assert stock.settle_stale_loans(sale, older_than_ms=0) == 0
    assert stock.segment_remaining(segment_name(sale, 2, 3)) == 4
    # The borrower comes back and presents its loan again: credited nothing more.
    stock.credit(sale, 2, [loan])
    assert stock.segment_remaining(segment_name(sale, 2, 3)) == 4
    assert stock.remaining(sale) == 6
    at_rest(platform, sale)


def test_a_late_lend_lends_nothing(platform: Platform) -> None:
    sale = platform.sale(stock=6, segments=3)
    assert platform.stock.lend(sale, 0, 1, 2, deadline_ms=platform.stock.now_ms() - 1) is None
    assert platform.stock.remaining(sale) == 6


def test_stock_changes_spread_over_segments(platform: Platform) -> None:
    sale = platform.sale(stock=9, segments=3, perUserLimit=9)
    (user,) = users_homed(1, 3, 1)
    for _ in range(3):
        platform.stock.reserve(segment_name(sale, 1, 3), user, 1, new_id())
    # Segment 1 is empty; lowering the stock takes unsold units from the others.
    platform.sale(sale, stock=5, segments=3, perUserLimit=9)
    assert platform.stock.remaining(sale) == 2
    at_rest(platform, sale)
    platform.sale(sale, stock=11, segments=3, perUserLimit=9)
    assert platform.stock.remaining(sale) == 8
    at_rest(platform, sale)
    from flashsale.sales import InvalidSale

    with pytest.raises(InvalidSale, match="already taken"):
        platform.sale(sale, stock=2, segments=3, perUserLimit=9)


def test_replays_and_purchases_of_one_call_follow_the_home(platform: Platform) -> None:
    sale = platform.sale(stock=10, segments=2, perUserLimit=2)
    (user,) = users_homed(1, 2, 1)
    segment = segment_name(sale, 1, 2)
    order = new_id()
    first = platform.stock.reserve_many(segment, [Purchase(user, 1, order, "key")])[0]
    again = platform.stock.reserve_many(segment, [Purchase(user, 1, new_id(), "key")])[0]
    assert first.outcome is again.outcome is Outcome.ACCEPTED
    assert again.replayed and again.order_id == order


def test_the_platform_figures_show_segments_and_loans(platform: Platform) -> None:
    from flashsale.figures import PlatformFigures, families
    from flashsale.figures.read import SaleFigures

    sale = platform.sale(stock=9, segments=3)
    platform.stock.lend(sale, lender=1, borrower=0, units=2)
    backlog = platform.stock.backlogs([sale])[sale]
    assert (backlog.segments, backlog.loans, backlog.remaining) == (3, 2, 9)
    assert backlog.oldest_loan_age_seconds >= 0
    figures = PlatformFigures(
        sales=(SaleFigures(sale, segments=3, loans=2, oldest_loan_age_seconds=1.5),)
    )
    samples = {
        (s.name, s.labels.get("sale")): s.value
        for family in families(figures)
        for s in family.samples
    }
    assert samples[("flashsale_sale_segments", sale)] == 3
    assert samples[("flashsale_sale_loan_units", sale)] == 2
    assert samples[("flashsale_sale_oldest_loan_age_seconds", sale)] == 1.5


async def test_an_id_that_cannot_be_sent_fails_alone_in_a_spread_sale(platform: Platform) -> None:
    from flashsale.stock import InvalidPurchase

    sale = platform.sale(stock=20, segments=4)
    fast = await _stock(platform)
    try:
        users = [f"ok{i}" for i in range(10)] + ["bad\ud800"]
        results = await asyncio.gather(
            *(fast.reserve(sale, u, 1, new_id()) for u in users), return_exceptions=True
        )
        assert isinstance(results[-1], InvalidPurchase)
        assert all(getattr(r, "outcome", None) is Outcome.ACCEPTED for r in results[:-1])
    finally:
        await fast.close()


async def test_a_large_purchase_gathers_units_from_many_segments(platform: Platform) -> None:
    sale = platform.sale(stock=10, segments=8, perUserLimit=10)
    fast = await _stock(platform)
    try:
        assert (await fast.reserve(sale, "big", 7, new_id())).outcome is Outcome.ACCEPTED
        assert platform.stock.remaining(sale) == 3
        assert (await fast.reserve(sale, "other", 4, new_id())).outcome is Outcome.SOLD_OUT
        assert platform.stock.remaining(sale) == 3  # gathered, not lost
        assert (await fast.reserve(sale, "other", 3, new_id())).outcome is Outcome.ACCEPTED
        assert platform.stock.remaining(sale) == 0
        at_rest(platform, sale)
    finally:
        await fast.close()


async def test_paying_a_reservation_not_yet_stored_in_another_segment(platform: Platform) -> None:
    from flashsale.orders import pay_order

    sale = platform.sale(stock=6, segments=3)
    (user,) = users_homed(1, 3, 2, "payer")
    fast = await _stock(platform)
    try:
        order = new_id()
        assert (await fast.reserve(sale, user, 1, order)).outcome is Outcome.ACCEPTED
    finally:
        await fast.close()
    assert pay_order(platform.sessions, platform.stock, user, order) == "paid"
    assert platform.stock.outbox_size(sale) == 0


def test_segments_are_placed_round_the_slots() -> None:
    from flashsale.stock import split
    from flashsale.stock.segments import SLOTS, segment_names, slot_of, target_slot

    for sale, count in (("tv-drop", 3), ("hot", 6), ("a.b-c", 8), ("x", 64)):
        names = segment_names(sale, count)
        assert [split(name) for name in names] == [(sale, k) for k in range(count)]
        for k, name in enumerate(names[1:], start=1):
            tolerance = max(1, SLOTS // (8 * count))
            assert abs(slot_of(name) - target_slot(sale, k, count)) <= tolerance, (name, k)
    # With the slots shared evenly by three masters (as redis-cli lays them out), three
    # segments land on three masters and six on three, two each.
    ranges = [(0, 5460), (5461, 10922), (10923, 16383)]

    def master(slot: int) -> int:
        return next(m for m, (low, high) in enumerate(ranges) if low <= slot <= high)

    for sale in (f"sale-{i}" for i in range(50)):
        assert len({master(slot_of(n)) for n in segment_names(sale, 3)}) == 3, sale
        per_master = Counter(master(slot_of(n)) for n in segment_names(sale, 6))
        assert sorted(per_master.values()) == [2, 2, 2], sale
