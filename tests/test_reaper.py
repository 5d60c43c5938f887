"""The reaper expires unpaid orders and returns their units to Redis exactly once: when
it races a payment, when two reapers run side by side, and when one dies halfway."""

from __future__ import annotations

import random
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text

from flashsale.orders import OrderClosed, pay_order
from flashsale.persist import persist_reservation
from flashsale.reaper import ReapReport, expire_due, reap
from flashsale.sales import sale_status
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform, Process, wait_for
from tests.helpers.orders import make_due, order, reserve, restored

REPORT = re.compile(r"expired (\d+) orders, returned (\d+) to stock")


def many_orders(platform: Platform, sale: str, count: int) -> list[str]:
    ids = [reserve(platform, sale, f"user-{i}") for i in range(count)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda oid: persist_reservation(platform.sessions, platform.stock, sale, oid), ids
            )
        )
    assert statuses == ["pending_payment"] * count
    return ids


def statuses(platform: Platform, sale: str) -> dict[str, str]:
    return {str(row["id"]): row["status"] for row in platform.orders(sale)}


def live_units(platform: Platform, sale: str) -> int:
    with platform.sessions() as session:
        return session.scalar(text("SELECT live_units FROM sales WHERE name = :s"), {"s": sale})


def assert_at_rest(platform: Platform, sale: str) -> None:
    status = sale_status(platform.sessions, platform.stock, sale)
    assert status is not None
    s = status.stock
    assert s.paid + s.pending_payment + s.reserved + s.remaining == s.total, s


def assert_all_returned_once(platform: Platform, sale: str, ids: list[str], total: int) -> None:
    rows = platform.orders(sale)
    assert len(rows) == len(ids)
    assert {row["status"] for row in rows} == {"expired"}
    assert all(row["restored_at"] is not None for row in rows)
    assert restored(platform, sale) == set(ids)
    assert platform.remaining(sale) == total
    assert platform.redis.hlen(SaleKeys(sale).held) == 0
    assert live_units(platform, sale) == 0
    assert_at_rest(platform, sale)


def flush_due(platform: Platform) -> None:
    """Reap whatever earlier tests left due, so this test's counts are its own."""
    reap(platform.sessions, platform.stock)


def test_expired_order_returns_units_once(platform: Platform) -> None:
    flush_due(platform)
    sale = platform.sale(stock=5, paymentTimeoutSeconds=1)
    late = order(platform, sale, "alice")
    payer = order(platform, sale, "bob")
    assert pay_order(platform.sessions, platform.stock, "bob", payer) == "paid"
    assert platform.remaining(sale) == 3
    assert_at_rest(platform, sale)

    time.sleep(1.2)
    first = reap(platform.sessions, platform.stock)
    assert first == ReapReport(expired=1, restored=1)
    assert statuses(platform, sale) == {late: "expired", payer: "paid"}
    assert platform.remaining(sale) == 4
    assert restored(platform, sale) == {late}
    assert platform.redis.hget(SaleKeys(sale).held, "alice") is None
    assert live_units(platform, sale) == 1

    assert reap(platform.sessions, platform.stock) == ReapReport(expired=0, restored=0)
    assert platform.stock.restore(sale, late, "alice", 1) == 0
    assert platform.remaining(sale) == 4
    assert_at_rest(platform, sale)

    # alice holds nothing any more, so she may buy again.
    again = order(platform, sale, "alice")
    assert platform.remaining(sale) == 3
    assert statuses(platform, sale)[again] == "pending_payment"
    assert_at_rest(platform, sale)
    # Paid, so it does not fall due during later tests.
    assert pay_order(platform.sessions, platform.stock, "alice", again) == "paid"


def race_once(platform: Platform, user: str, order_id: str) -> str:
    """Pay and reap at the same moment; returns what the payer was told."""
    barrier = threading.Barrier(2)
    answer: list[str] = []
    errors: list[Exception] = []

    def pay() -> None:
        barrier.wait()
        try:
            answer.append(pay_order(platform.sessions, platform.stock, user, order_id))
        except OrderClosed as exc:
            answer.append(exc.status)
        except Exception as exc:
            errors.append(exc)

    def reaper() -> None:
        barrier.wait()
        try:
            reap(platform.sessions, platform.stock)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pay), threading.Thread(target=reaper)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(answer) == 1
    return answer[0]


def test_payment_races_reaper(platform: Platform) -> None:
    flush_due(platform)
    rounds = 30
    sale = platform.sale(stock=rounds)
    ids = many_orders(platform, sale, rounds)
    outcomes: dict[str, str] = {}
    rng = random.Random(7)

    for i, oid in enumerate(ids):
        user = f"user-{i}"
        # Deadline spread around "now": sometimes long past, sometimes still ahead.
        offset_ms = rng.randint(-20, 40)
        with platform.sessions.begin() as session:
            session.execute(
                text(
                    "UPDATE orders SET expires_at = clock_timestamp() "
                    "+ make_interval(secs => :off / 1000.0) WHERE id = :id"
                ),
                {"off": offset_ms, "id": uuid.UUID(oid)},
            )
        outcomes[oid] = race_once(platform, user, oid)
        assert outcomes[oid] in {"paid", "expired"}

    # Orders whose deadline passed after the reaper looked are settled by one more run.
    time.sleep(0.05)
    reap(platform.sessions, platform.stock)
    final = statuses(platform, sale)
    back = restored(platform, sale)
    for oid in ids:
        assert final[oid] in {"paid", "expired"}
        # The payer's answer is the truth: paid orders stay sold, the others come back.
        assert final[oid] == outcomes[oid], (oid, final[oid], outcomes[oid])
        assert (oid in back) == (final[oid] == "expired")
    paid = sum(1 for s in final.values() if s == "paid")
    assert set(outcomes.values()) == {"paid", "expired"}, "the race was never contested"
    assert platform.remaining(sale) == rounds - paid
    assert live_units(platform, sale) == paid
    assert_at_rest(platform, sale)


def test_two_reaper_threads_return_each_order_once(platform: Platform) -> None:
    flush_due(platform)
    total = 200
    sale = platform.sale(stock=total)
    ids = many_orders(platform, sale, total)
    assert platform.remaining(sale) == 0
    make_due(platform, sale)

    barrier = threading.Barrier(2)
    reports: list[ReapReport] = []

    def run() -> None:
        barrier.wait()
        reports.append(reap(platform.sessions, platform.stock, batch_size=7))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(reports) == 2
    assert sum(r.expired for r in reports) == total
    assert sum(r.restored for r in reports) == total
    assert_all_returned_once(platform, sale, ids, total)
    assert reap(platform.sessions, platform.stock) == ReapReport(expired=0, restored=0)
    assert platform.remaining(sale) == total


def test_two_reaper_processes_return_each_order_once(platform: Platform, tmp_path: Path) -> None:
    flush_due(platform)
    total = 200
    sale = platform.sale(stock=total)
    ids = many_orders(platform, sale, total)
    make_due(platform, sale)

    env = {**platform.env, "FLASHSALE_REAP_BATCH_SIZE": "5"}
    procs = [Process(["reap"], env, tmp_path / f"reap-{i}.log") for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        assert p.proc is not None
        assert p.proc.wait(60) == 0, p.output()

    expired = returned = 0
    for p in procs:
        match = REPORT.search(p.output())
        assert match, p.output()
        expired += int(match.group(1))
        returned += int(match.group(2))
    assert (expired, returned) == (total, total)
    assert_all_returned_once(platform, sale, ids, total)


def test_reaper_dying_between_steps(platform: Platform) -> None:
    flush_due(platform)
    sale = platform.sale(stock=20)
    ids = many_orders(platform, sale, 20)
    make_due(platform, sale)

    # Killed after step 1: the orders are expired in SQL but no unit is back yet.
    assert expire_due(platform.sessions, batch_size=6) == 20
    assert set(statuses(platform, sale).values()) == {"expired"}
    assert platform.remaining(sale) == 0
    assert restored(platform, sale) == set()
    assert live_units(platform, sale) == 0

    # Killed in step 2 after Redis took some units back but before SQL recorded it.
    for i, oid in enumerate(ids[:5]):
        assert platform.stock.restore(sale, oid, f"user-{i}", 1) == 1
    assert platform.remaining(sale) == 5

    report = reap(platform.sessions, platform.stock, batch_size=6)
    assert report == ReapReport(expired=0, restored=15)
    assert_all_returned_once(platform, sale, ids, 20)
    assert reap(platform.sessions, platform.stock) == ReapReport(expired=0, restored=0)
    assert platform.remaining(sale) == 20


def kill_when(victim: Process, progressed: Callable[[], bool]) -> int | None:
    """Start `victim`, SIGKILL it as soon as `progressed()`; returns its exit code."""
    proc = victim.start().proc
    assert proc is not None
    wait_for(lambda: proc.poll() is not None or progressed(), timeout=30, every=0.003)
    victim.stop(signal.SIGKILL)
    return proc.returncode


def test_reaper_killed_halfway_then_rerun(platform: Platform, tmp_path: Path) -> None:
    flush_due(platform)
    total = 600
    sale = platform.sale(stock=total)
    ids = many_orders(platform, sale, total)
    make_due(platform, sale)
    client = platform.redis

    env = {**platform.env, "FLASHSALE_REAP_BATCH_SIZE": "3"}

    def expired_count() -> int:
        with platform.sessions() as session:
            return session.scalar(
                text("SELECT count(*) FROM orders WHERE sale = :s AND status = 'expired'"),
                {"s": sale},
            )

    # First killed while expiring, then killed while returning units.
    phases = [lambda: expired_count() > 0, lambda: client.scard(SaleKeys(sale).restored) > 0]
    for i, progressed in enumerate(phases):
        code = kill_when(Process(["reap"], env, tmp_path / f"victim-{i}.log"), progressed)
        assert code == -signal.SIGKILL, f"reaper {i} finished before the kill"

        # Whatever it managed, Redis is consistent: units back == orders marked returned.
        halfway = restored(platform, sale)
        print(f"killed {i}: {expired_count()} expired, {len(halfway)} of {total} returned")
        assert len(halfway) < total
        assert platform.remaining(sale) == len(halfway)

    rerun = Process(["reap"], platform.env, tmp_path / "rerun.log").start()
    assert rerun.proc is not None
    assert rerun.proc.wait(60) == 0, rerun.output()
    match = REPORT.search(rerun.output())
    assert match, rerun.output()
    assert int(match.group(2)) == total - len(halfway)
    assert_all_returned_once(platform, sale, ids, total)


def test_invariant_with_every_kind_of_order(platform: Platform) -> None:
    flush_due(platform)
    sale = platform.sale(stock=10)
    paid = [order(platform, sale, f"p{i}") for i in range(2)]
    for i, oid in enumerate(paid):
        assert pay_order(platform.sessions, platform.stock, f"p{i}", oid) == "paid"
    [order(platform, sale, f"w{i}") for i in range(3)]  # pending_payment
    [reserve(platform, sale, f"r{i}") for i in range(2)]  # reserved, not in SQL yet
    expiring = [order(platform, sale, f"e{i}") for i in range(2)]
    with platform.sessions.begin() as session:
        session.execute(
            text("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = ANY(:ids)"),
            {"ids": [uuid.UUID(oid) for oid in expiring]},
        )
    assert platform.remaining(sale) == 1
    assert_at_rest(platform, sale)

    reap(platform.sessions, platform.stock)
    status = sale_status(platform.sessions, platform.stock, sale)
    assert status is not None
    s = status.stock
    assert (s.total, s.paid, s.pending_payment, s.reserved, s.remaining, s.expired) == (
        10,
        2,
        3,
        2,
        3,
        2,
    )
    assert_at_rest(platform, sale)
