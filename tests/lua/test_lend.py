"""lend.lua and settle.lua on their own, against the real Redis, and reserve.lua's
crediting of loans: units leave a segment as a loan, the borrower credits each loan once
and only in its epoch, and settling forgets it."""

from __future__ import annotations

import uuid

from flashsale.stock import segment_name
from flashsale.stock.calls import Loan, parse_answers, reserve_call
from flashsale.stock.keys import SaleKeys
from flashsale.stock.scripts import lua_source
from tests.conftest import Platform


def lend(
    platform: Platform, segment: str, loan_id: str, to: int, units: int, deadline: int = 0
) -> list[int]:
    k = SaleKeys(segment)
    raw = platform.redis.eval(
        lua_source("lend"), 3, k.meta, k.stock, k.loans, loan_id, to, units, deadline
    )
    return [int(x) for x in raw]


def credit(platform: Platform, segment: str, loans: list[Loan]) -> int:
    keys, args = reserve_call(segment, (), loans=loans)
    raw = platform.redis.eval(lua_source("reserve"), len(keys), *keys, *args)
    return parse_answers(raw, 0)[1].remaining


def test_a_loan_takes_what_is_there_and_records_it(platform: Platform) -> None:
    sale = platform.sale(stock=6, segments=2)  # three units each
    lender, k = segment_name(sale, 1, 2), SaleKeys(segment_name(sale, 1, 2))
    units, left, now, epoch = lend(platform, lender, "l1", 0, 2)
    assert (units, left, epoch) == (2, 1, 0) and now > 0
    assert platform.redis.hget(k.loans, "l1") == f"0|2|{now}|0".encode()
    assert int(platform.redis.hget(k.meta, "moved")) == -2
    # More than is left: what is left.
    assert lend(platform, lender, "l2", 0, 5)[:2] == [1, 0]
    assert lend(platform, lender, "l3", 0, 1)[:2] == [0, 0]
    # The same loan id again lends nothing more.
    assert lend(platform, segment_name(sale, 0, 2), "l1", 1, 1)[0] == 1  # another segment's
    assert lend(platform, lender, "l1", 0, 1)[0] == 0


def test_a_late_or_held_segment_lends_nothing(platform: Platform) -> None:
    sale = platform.sale(stock=4, segments=2)
    lender = segment_name(sale, 1, 2)
    assert lend(platform, lender, "late", 0, 1, deadline=1)[0] == 0
    assert lend(platform, segment_name("no-such-sale", 1, 2), "x", 0, 1)[0] == 0
    platform.stock.hold(sale)
    assert lend(platform, lender, "held", 0, 1)[0] == -1
    assert platform.stock.segment_remaining(lender) == 2


def test_the_borrower_credits_each_loan_once_and_only_in_its_epoch(platform: Platform) -> None:
    sale = platform.sale(stock=6, segments=2)
    borrower = segment_name(sale, 0, 2)
    _, _, _, epoch = lend(platform, segment_name(sale, 1, 2), "l1", 0, 2)
    loan = Loan("l1", segment_name(sale, 1, 2), 2, epoch)
    assert credit(platform, borrower, [loan]) == 5
    assert credit(platform, borrower, [loan]) == 5  # presented again: nothing more
    assert int(platform.redis.hget(SaleKeys(borrower).meta, "moved")) == 2
    stale = Loan(uuid.uuid4().hex, segment_name(sale, 1, 2), 3, epoch + 1)
    assert credit(platform, borrower, [stale]) == 5  # another epoch's loan: nothing


def test_settling_forgets_credited_loans(platform: Platform) -> None:
    sale = platform.sale(stock=6, segments=2)
    lender = segment_name(sale, 1, 2)
    for loan_id in ("a", "b"):
        lend(platform, lender, loan_id, 0, 1)
    settle = lua_source("settle")
    loans_key = SaleKeys(lender).loans
    assert platform.redis.eval(settle, 1, loans_key, "a", "b", "c") == 2
    assert platform.redis.eval(settle, 1, loans_key, "a") == 0
    assert platform.redis.hlen(loans_key) == 0
