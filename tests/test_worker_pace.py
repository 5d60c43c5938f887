"""A real Celery worker keeps its pace inside the task: FLASHSALE_ORDERS_PER_SECOND holds
a large message back, and the pace the operator writes to the broker's Redis replaces it.

Lower bounds on time check the pace; the upper bounds only tell a whole pace from half
of it, or the default pace from none, with generous slack."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from flashsale.handoff import persist_message
from flashsale.stock import Outcome
from flashsale.worker.pacing import BURST_SECONDS, REFRESH_SECONDS, WORKER_PACE_KEY
from tests.conftest import Platform, Process, wait_for

PACE = 20  # orders/s: FLASHSALE_ORDERS_PER_SECOND of this module's worker
BROKER_DB = 2  # the session's worker uses 0, the operator tests 1


@dataclass
class PacedWorker:
    process: Process
    broker: redis.Redis
    queue: str


@pytest.fixture(scope="module")
def paced(platform: Platform, workdir: Path) -> Iterator[PacedWorker]:
    """A worker of its own: its own broker database (so the pace key reaches no other
    worker) and its own queue."""
    broker_url = platform.redis_url.rsplit("/", 1)[0] + f"/{BROKER_DB}"
    queue = f"test.paced.{uuid.uuid4().hex[:8]}"
    broker = redis.Redis.from_url(broker_url)
    broker.delete(WORKER_PACE_KEY)
    env = {
        **platform.env,
        "FLASHSALE_BROKER_URL": broker_url,
        "FLASHSALE_QUEUE": queue,
        "FLASHSALE_ORDERS_PER_SECOND": str(PACE),
    }
    process = Process(
        ["worker", "--pool", "prefork", "--concurrency", "2"], env, workdir / "paced-worker.log"
    ).start()
    try:
        wait_for(lambda: "ready" in process.output(), timeout=60)
        yield PacedWorker(process, broker, queue)
    finally:
        process.stop()
        broker.delete(WORKER_PACE_KEY, queue)
        broker.close()


def persist_in_one_message(
    platform: Platform, paced: PacedWorker, orders: int, messages: int = 1
) -> float:
    """Reserve `orders` units of a new sale, hand them to the worker in `messages` equal
    messages and return the seconds until all of them are in SQL."""
    sale = platform.sale(stock=orders)
    ids = [str(uuid.uuid4()) for _ in range(orders)]
    for i, order_id in enumerate(ids):
        result = platform.stock.reserve(sale, f"buyer-{i}", 1, order_id)
        assert result.outcome == Outcome.ACCEPTED, result
    start = time.monotonic()
    size = orders // messages
    for first in range(0, orders, size):
        chunk = ids[first : first + size]
        paced.broker.lpush(paced.queue, persist_message(sale, chunk, paced.queue))
    wait_for(lambda: len(platform.orders(sale)) == orders, timeout=30, every=0.05)
    elapsed = time.monotonic() - start
    assert {str(row["id"]) for row in platform.orders(sale)} == set(ids)
    return elapsed


def test_the_default_pace_holds_a_large_message_back(
    platform: Platform, paced: PacedWorker
) -> None:
    paced.broker.delete(WORKER_PACE_KEY)
    # 60 orders at 20/s with a one-second burst: 20 at once, 40 more take 2 s.
    elapsed = persist_in_one_message(platform, paced, 60)
    assert elapsed >= 1.9, f"60 orders in {elapsed:.2f} s at a pace of {PACE}/s"
    # The pace is the worker's, not split between its two pool processes: at half of it
    # the same message would take (60 - 10) / 10 = 5 s.
    assert elapsed < 4.5, f"60 orders in {elapsed:.2f} s: the pool split the pace"


def test_the_pool_processes_share_the_pace(platform: Platform, paced: PacedWorker) -> None:
    paced.broker.delete(WORKER_PACE_KEY)
    time.sleep(BURST_SECONDS)  # the bucket refills after the previous test
    # Two messages, one for each pool process: together they keep to one pace. With a
    # bucket of their own each, 30 orders would pass in half a second.
    elapsed = persist_in_one_message(platform, paced, 60, messages=2)
    assert elapsed >= 1.9, f"60 orders in {elapsed:.2f} s at a pace of {PACE}/s"


def test_the_pace_key_on_the_broker_replaces_the_default(
    platform: Platform, paced: PacedWorker
) -> None:
    paced.broker.set(WORKER_PACE_KEY, "100000")
    # The worker reads the key at most every REFRESH_SECONDS: let a read from an earlier
    # test go stale.
    time.sleep(REFRESH_SECONDS)
    elapsed = persist_in_one_message(platform, paced, 200)
    # At the default 20/s these would take (200 - 20) / 20 = 9 s.
    assert elapsed < 8, f"200 orders took {elapsed:.2f} s: the pace key was not honoured"
