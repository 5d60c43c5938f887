"""`sweep --every` and `reap --every` as real processes while their Redis is frozen
(SIGSTOP), stopped and restarted, and their PostgreSQL stopped and started: they log the
outage, keep running, and do their work once the servers are back; `flashsale:runs:*`
shows the failures and a later success."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from sqlalchemy import text

from flashsale.handoff import persist_args
from flashsale.persist import persist_reservation
from flashsale.runs import RunFigures, read_runs
from flashsale.stock import Outcome, Stock
from tests.conftest import Process, wait_for
from tests.faults.conftest import QUEUE, REPORT, Stack

FROZEN_SECONDS = 6.0
DOWN_SECONDS = 3.0


@contextmanager
def frozen(stack: Stack, seconds: float) -> Iterator[None]:
    """Redis stopped in its tracks (SIGSTOP): connections hang rather than fail."""
    assert stack.redis.proc is not None
    pid = stack.redis.proc.pid
    os.kill(pid, signal.SIGSTOP)
    stack.faults.append(f"Redis frozen for {seconds:.0f} s")
    try:
        yield
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def restart_redis(stack: Stack, seconds: float) -> int:
    """Stop Redis, wait, start it again on its port and folder; returns when it was back
    (Unix ms)."""
    stack.redis.stop()
    stack.faults.append(f"Redis stopped for {seconds:.0f} s")
    time.sleep(seconds)
    stack.redis.auto_port = False
    stack.redis.start()
    return int(time.time() * 1000)


def fresh_client(stack: Stack) -> redis.Redis:
    """A new connection: the stack's own may have died with the server it talked to."""
    return redis.Redis.from_url(stack.redis.url, socket_timeout=5)


def fresh_stock(stack: Stack) -> Stock:
    return Stock(fresh_client(stack))


def reserve(stock: Stock, sale: str, user: str) -> str:
    order_id = str(uuid.uuid4())
    result = stock.reserve(sale, user, 1, order_id)
    assert result.outcome == Outcome.ACCEPTED, result
    return order_id


def seconds_until_republished(stack: Stack, sale: str, user: str) -> float:
    """Reserve through new connections (the old ones died with the outage) and time how
    long the running sweeper takes to hand the reservation out again."""
    started = time.monotonic()
    order_id = reserve(fresh_stock(stack), sale, user)
    client = fresh_client(stack)
    wait_for(lambda: order_id in queued(client, sale), timeout=30)
    return time.monotonic() - started


def queued(client: redis.Redis, sale: str) -> set[str]:
    found: set[str] = set()
    raw_messages: list[bytes] = client.lrange(QUEUE, 0, -1)  # type: ignore[assignment]
    for raw in raw_messages:
        message_sale, ids = persist_args(raw)
        if message_sale == sale:
            found.update(ids)
    return found


def runs(stack: Stack, component: str) -> RunFigures:
    client = redis.Redis.from_url(stack.redis.url, socket_timeout=5)
    try:
        return read_runs(client)[component]
    finally:
        client.close()


def alive(proc: Process) -> bool:
    assert proc.proc is not None
    return proc.proc.poll() is None


def test_sweep_loop_rides_out_a_frozen_and_a_restarted_redis(stack: Stack) -> None:
    sale = stack.sale(stock=10)
    sweeper = stack.start("sweeper", ["sweep", "--every", "0.5", "--older-than", "1"])
    first = reserve(stack.stock, sale, "before")
    wait_for(lambda: first in queued(stack.client, sale), timeout=30)

    with frozen(stack, FROZEN_SECONDS):
        pass
    after_thaw = seconds_until_republished(stack, sale, "after-freeze")
    assert alive(sweeper), sweeper.output()

    back_ms = restart_redis(stack, DOWN_SECONDS)
    after_restart = seconds_until_republished(stack, sale, "after-restart")
    assert alive(sweeper), sweeper.output()
    REPORT.append(
        {
            "scenario": "sweep --every 0.5: Redis frozen, then stopped and restarted",
            "faults": stack.faults,
            "republished_after_thaw": round(after_thaw, 2),
            "republished_after_restart": round(after_restart, 2),
        }
    )

    figures = wait_for(lambda: (f := runs(stack, "sweeper")).last_ok_ms > back_ms and f)
    assert figures.failures >= 2, figures  # at least one run in each outage
    assert figures.last_error, figures
    assert "WARNING flashsale.loops: sweeper: " in sweeper.output()
    assert "Traceback" not in sweeper.output()
    assert fresh_stock(stack).outbox_size(sale) == 3  # no worker: all still waiting


def due_order(stack: Stack, stock: Stock, sale: str, user: str) -> str:
    """A pending_payment order whose payment time is over."""
    order_id = reserve(stock, sale, user)
    assert persist_reservation(stack.sessions, stock, sale, order_id) == "pending_payment"
    make_due(stack, order_id)
    return order_id


def make_due(stack: Stack, order_id: str) -> None:
    with stack.sessions.begin() as session:
        session.execute(
            text("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": order_id},
        )


def reaped(stack: Stack, stock: Stock, sale: str, order_id: str) -> bool:
    with stack.sessions() as session:
        row = session.execute(
            text("SELECT status, restored_at FROM orders WHERE id = :id"), {"id": order_id}
        ).one()
    returned = order_id in stock.returned_orders(sale)
    return row.status == "expired" and row.restored_at is not None and bool(returned)


def test_reap_loop_rides_out_postgres_and_redis_outages(stack: Stack) -> None:
    sale = stack.sale(stock=10)
    reaper = stack.start("reaper", ["reap", "--every", "0.5"])
    first = due_order(stack, stack.stock, sale, "before")
    wait_for(lambda: reaped(stack, stack.stock, sale, first), timeout=30)

    stack.postgres.stop()
    stack.faults.append(f"PostgreSQL stopped for {DOWN_SECONDS:.0f} s")
    time.sleep(DOWN_SECONDS)
    stack.postgres.auto_port = False
    stack.postgres.start()
    after_db = due_order(stack, stack.stock, sale, "after-db")
    db_back = time.monotonic()
    wait_for(lambda: reaped(stack, stack.stock, sale, after_db), timeout=30)
    after_db_seconds = time.monotonic() - db_back
    assert alive(reaper), reaper.output()

    # Due while Redis is frozen: expired in SQL, its units returned once Redis answers.
    pending = reserve(stack.stock, sale, "during-freeze")
    assert persist_reservation(stack.sessions, stack.stock, sale, pending) == "pending_payment"
    with frozen(stack, FROZEN_SECONDS):
        make_due(stack, pending)
    thawed_ms = int(time.time() * 1000)
    stock = fresh_stock(stack)
    wait_for(lambda: reaped(stack, stock, sale, pending), timeout=30)
    after_thaw = time.time() - thawed_ms / 1000
    assert alive(reaper), reaper.output()
    REPORT.append(
        {
            "scenario": "reap --every 0.5: PostgreSQL stopped and started, then Redis frozen",
            "faults": stack.faults,
            "reaped_after_database_back": round(after_db_seconds, 2),
            "returned_after_thaw": round(after_thaw, 2),
        }
    )

    figures = wait_for(lambda: (f := runs(stack, "reaper")).last_ok_ms > thawed_ms and f)
    assert figures.failures >= 2, figures  # PostgreSQL down, then Redis frozen
    assert "WARNING flashsale.loops: reaper: " in reaper.output()
    assert stock.remaining(sale) == 10  # every unit came back
