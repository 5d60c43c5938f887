"""A task message is never a blast radius: a reservation that can never be stored becomes
a dead letter (visible, units returned once) and the others in its message are stored;
garbage on the queue is put aside, not retried forever."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from flashsale.handoff import persist_message, persist_template
from flashsale.orders import OrderClosed, get_order, pay_order
from flashsale.persist import persist_reservations
from flashsale.sales import sale_status
from flashsale.settings import Settings
from flashsale.stock import Outcome, Purchase
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform, Process, wait_for

QUEUE = Settings().queue
# Values that only a crafted token or a damaged Redis could bring this far: the door
# refuses them, so they are written here below it.
POISONS = ["nul\x00user", "line\u2028separator", "\x1b[31mred"]


def dead_letters(platform: Platform, sale: str) -> list[dict[str, Any]]:
    with platform.sessions() as session:
        rows = session.execute(
            text(
                "SELECT order_id::text, user_id, quantity, units_returned, reason "
                "FROM dead_letters WHERE sale = :s ORDER BY id"
            ),
            {"s": sale},
        ).mappings()
        return [dict(row) for row in rows]


def reserve_with(platform: Platform, sale: str, users: list[str], queue: str = "") -> list[str]:
    """Purchases of one call of the reserve script, as the API sends them together."""
    purchases = [Purchase(user, 1, str(uuid.uuid4())) for user in users]
    message = persist_template(sale, queue) if queue else None
    results = platform.stock.reserve_many(sale, purchases, queue, message)
    assert all(r.outcome is Outcome.ACCEPTED for r in results), results
    return [p.order_id for p in purchases]


def assert_adds_up(platform: Platform, sale: str, total: int) -> None:
    status = sale_status(platform.sessions, platform.stock, sale)
    assert status is not None
    s = status.stock
    assert s.reserved == 0
    assert s.paid + s.pending_payment + s.reserved + s.remaining == total


def test_one_unstorable_reservation_does_not_hold_back_its_message(platform: Platform) -> None:
    sale = platform.sale(stock=40, perUserLimit=1)
    users = [f"buyer-{i}" for i in range(30)]
    for at, poison in zip((3, 15, 29), POISONS, strict=True):
        users.insert(at, poison)
    ids = reserve_with(platform, sale, users)
    poisoned = {ids[users.index(p)] for p in POISONS}
    # And one whose user id Redis holds as bytes that are not UTF-8 at all.
    k, client = SaleKeys(sale), platform.redis
    client.hset(k.reservation(ids[20]), "user", b"\xed\xa0\x80 surrogate")
    client.hdel(k.held, users[20])
    client.hset(k.held, b"\xed\xa0\x80 surrogate", 1)
    poisoned.add(ids[20])

    statuses = persist_reservations(platform.sessions, platform.stock, sale, ids)

    assert {oid for oid, s in statuses.items() if s == "dead"} == poisoned
    assert sum(1 for s in statuses.values() if s == "pending_payment") == 29
    assert len(platform.orders(sale)) == 29
    letters = dead_letters(platform, sale)
    assert {row["order_id"] for row in letters} == poisoned
    assert all(row["units_returned"] == 1 for row in letters)
    assert any("\\u0000" in row["user_id"] for row in letters)  # escaped, readable
    assert client.zcard(k.outbox) == 0
    assert platform.remaining(sale) == 40 - 29  # the four units are back
    assert client.hlen(k.held) == 29  # and the poisoned shoppers hold nothing
    assert_adds_up(platform, sale, 40)

    # Delivered again (a sweep, a redelivery): nothing doubles.
    again = persist_reservations(platform.sessions, platform.stock, sale, ids)
    assert again == statuses
    assert len(dead_letters(platform, sale)) == 4
    assert platform.remaining(sale) == 11


def test_a_row_postgresql_refuses_is_found_and_put_aside(platform: Platform) -> None:
    """A fault no check foresaw (a damaged expiry here): the batch fails for its data, each
    reservation is tried alone, and only the culprit becomes a dead letter."""
    sale = platform.sale(stock=10, perUserLimit=1)
    ids = reserve_with(platform, sale, [f"u{i}" for i in range(6)])
    platform.redis.hset(SaleKeys(sale).reservation(ids[2]), "expires_at", "9" * 19)

    statuses = persist_reservations(platform.sessions, platform.stock, sale, ids)

    assert statuses[ids[2]] == "dead"
    assert sorted(s for oid, s in statuses.items() if oid != ids[2]) == ["pending_payment"] * 5
    [letter] = dead_letters(platform, sale)
    assert letter["order_id"] == ids[2] and "PostgreSQL refused it" in letter["reason"]
    assert platform.remaining(sale) == 10 - 5
    assert_adds_up(platform, sale, 10)


def test_a_dead_letter_reads_as_rejected_and_cannot_be_paid(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=1)
    [order] = reserve_with(platform, sale, ["tab\tuser"])
    # Paying persists a reservation first: here that finds it can never be stored.
    try:
        pay_order(platform.sessions, platform.stock, "tab\tuser", order)
    except OrderClosed as closed:
        assert closed.status == "rejected"
    else:
        raise AssertionError("a dead letter was paid")
    view = get_order(platform.sessions, platform.stock, "tab\tuser", order)
    assert view.status == "rejected"
    assert platform.remaining(sale) == 5


def test_the_worker_stores_the_rest_and_puts_garbage_aside(
    platform: Platform, worker: Process
) -> None:
    """A real worker: one message mixing poisoned and normal reservations, then messages
    no API writes; the worker stays up, stores every normal order and keeps a record."""
    sale = platform.sale(stock=70, perUserLimit=1)
    users = [f"w-{i}" for i in range(60)]
    users.insert(10, POISONS[0])
    ids = reserve_with(platform, sale, users, QUEUE)
    client = platform.redis
    client.lpush(QUEUE, b"\x00 not a message at all")
    client.lpush(QUEUE, persist_message("Not A Sale!", ["x"], QUEUE))
    later = reserve_with(platform, sale, ["after-garbage"], QUEUE)

    try:
        wait_for(lambda: len(platform.orders(sale)) == 61, timeout=30)
    except AssertionError:
        raise AssertionError(worker.output()[-5000:]) from None
    wait_for(lambda: client.zcard(SaleKeys(sale).outbox) == 0, timeout=30)
    stored = {str(row["id"]) for row in platform.orders(sale)}
    assert stored == (set(ids) - {ids[10]}) | set(later)
    assert [row["order_id"] for row in dead_letters(platform, sale)] == [ids[10]]
    assert platform.remaining(sale) == 70 - 61
    with platform.sessions() as session:
        reasons = session.scalars(
            text("SELECT reason FROM dead_letters WHERE payload LIKE '%Not A Sale!%'")
        ).all()
    assert reasons == ["the sale is not a sale name"]
    assert worker.proc is not None and worker.proc.poll() is None
    assert "dead letter" in worker.output()
