"""A reservation whose task message was lost waits in the outbox until sweep re-publishes
it; then the worker persists it exactly once and it leaves the outbox."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from flashsale.handoff import persist_args
from flashsale.orders import get_order
from flashsale.settings import Settings
from flashsale.stock import Outcome
from flashsale.stock.keys import SaleKeys
from flashsale.sweeper import sweep
from tests.conftest import Platform, Process, wait_for

QUEUE = Settings().queue


@pytest.fixture
def private_queue(platform: Platform) -> Iterator[str]:
    """A queue of the test's own, which no worker reads; removed after the test."""
    name = f"test-sweep-{uuid.uuid4().hex}"
    yield name
    platform.redis.delete(name)


def reserve_without_message(platform: Platform, sale: str, user: str) -> str:
    """Reserved in Redis, but the publish was lost: nothing on the Celery queue."""
    order_id = str(uuid.uuid4())
    result = platform.stock.reserve(sale, user, 1, order_id)
    assert result.outcome == Outcome.ACCEPTED, result
    return order_id


def in_outbox(platform: Platform, sale: str, order_id: str) -> bool:
    return platform.redis.zscore(SaleKeys(sale).outbox, order_id) is not None


def inflight(platform: Platform, sale: str) -> int:
    return int(platform.redis.hget(SaleKeys(sale).meta, "inflight") or 0)


def queued_args(platform: Platform, queue: str, skip: bytes = b"") -> list[tuple[str, list[str]]]:
    """The (sale, order ids) of every persist message waiting on `queue`, skipping
    placeholder entries equal to `skip`."""
    found = []
    for raw in platform.redis.lrange(queue, 0, -1):
        if raw == skip:
            continue
        assert orjson.loads(raw)["headers"]["task"] == "flashsale.persist_orders"
        found.append(persist_args(raw))
    return found


def times_queued(
    platform: Platform, queue: str, sale: str, order_id: str, skip: bytes = b""
) -> int:
    return sum(ids.count(order_id) for s, ids in queued_args(platform, queue, skip) if s == sale)


def assert_persisted_once(platform: Platform, sale: str, order_id: str, user: str) -> None:
    rows = wait_for(lambda: platform.orders(sale), timeout=30)
    wait_for(lambda: not in_outbox(platform, sale, order_id), timeout=30)
    rows = platform.orders(sale)
    assert len(rows) == 1, rows
    assert str(rows[0]["id"]) == order_id
    assert (rows[0]["user_id"], rows[0]["status"]) == (user, "pending_payment")
    assert inflight(platform, sale) == 0
    assert get_order(platform.sessions, platform.stock, user, order_id).status == (
        "pending_payment"
    )


def test_lost_publish_is_swept_by_the_command(
    platform: Platform, worker: Process, tmp_path: Path
) -> None:
    sale = platform.sale(stock=3)
    order_id = reserve_without_message(platform, sale, "alice")

    time.sleep(1.0)  # the worker is running, yet nothing tells it about this order
    assert platform.orders(sale) == []
    assert in_outbox(platform, sale, order_id)
    assert inflight(platform, sale) == 1
    assert get_order(platform.sessions, platform.stock, "alice", order_id).status == ("reserved")

    sweeper = Process(["sweep", "--older-than", "0"], platform.env, tmp_path / "sweep.log")
    sweeper.start()
    assert sweeper.proc is not None
    assert sweeper.proc.wait(60) == 0, sweeper.output()
    match = re.search(r"re-published (\d+) reservations", sweeper.output())
    assert match and int(match.group(1)) >= 1, sweeper.output()

    assert_persisted_once(platform, sale, order_id, "alice")

    # Sweeping again finds nothing of this sale left to publish.
    again = Process(["sweep", "--older-than", "0"], platform.env, tmp_path / "again.log")
    again.start()
    assert again.proc is not None
    assert again.proc.wait(60) == 0, again.output()
    time.sleep(0.3)
    assert len(platform.orders(sale)) == 1
    assert inflight(platform, sale) == 0


def test_sweep_function_publishes_twice_yet_one_order(
    platform: Platform, private_queue: str, worker: Process
) -> None:
    sale = platform.sale(stock=3)
    order_id = reserve_without_message(platform, sale, "bob")
    client = platform.redis

    # Two sweeps before any worker acts (onto a queue no worker reads, so the worker
    # cannot win the race between them): the same reservation goes out twice.
    assert sweep(platform.sessions, platform.stock, client, private_queue, 0) >= 1
    assert sweep(platform.sessions, platform.stock, client, private_queue, 0) >= 1
    assert times_queued(platform, private_queue, sale, order_id) == 2
    task_ids = [
        orjson.loads(raw)["headers"]["id"]
        for raw in client.lrange(private_queue, 0, -1)
        if order_id in persist_args(raw)[1]
    ]
    assert len(set(task_ids)) == 2
    # Now the worker gets both copies (and any other sale's stale entries) at once.
    while client.rpoplpush(private_queue, QUEUE) is not None:
        pass

    assert_persisted_once(platform, sale, order_id, "bob")
    # Both copies ran to the end.
    wait_for(lambda: all(f"[{t}] succeeded" in worker.output() for t in task_ids), timeout=30)
    assert len(platform.orders(sale)) == 1
    assert inflight(platform, sale) == 0
    assert platform.remaining(sale) == 2


def test_young_entry_is_not_republished(
    platform: Platform, private_queue: str, worker: Process
) -> None:
    sale = platform.sale(stock=3)
    order_id = reserve_without_message(platform, sale, "carol")
    client = platform.redis
    sweep(platform.sessions, platform.stock, client, private_queue, 60)
    assert times_queued(platform, private_queue, sale, order_id) == 0

    # The same threshold on the real queue: still nothing reaches the worker.
    sweep(platform.sessions, platform.stock, client, QUEUE, 60)
    time.sleep(0.8)
    assert platform.orders(sale) == []
    assert in_outbox(platform, sale, order_id)

    # Once it is older than the threshold it goes out.
    time.sleep(0.3)
    sweep(platform.sessions, platform.stock, client, private_queue, 1)
    assert times_queued(platform, private_queue, sale, order_id) == 1


def test_a_republished_entry_waits_a_full_threshold_again(
    platform: Platform, private_queue: str
) -> None:
    """Workers behind schedule must not get the same reservation on every sweep."""
    sale = platform.sale(stock=3)
    order_id = reserve_without_message(platform, sale, "dina")
    client = platform.redis
    time.sleep(1.1)
    sweep(platform.sessions, platform.stock, client, private_queue, 1)
    sweep(platform.sessions, platform.stock, client, private_queue, 1)  # too soon: not again
    assert times_queued(platform, private_queue, sale, order_id) == 1
    assert in_outbox(platform, sale, order_id)
    time.sleep(1.1)
    sweep(platform.sessions, platform.stock, client, private_queue, 1)
    assert times_queued(platform, private_queue, sale, order_id) == 2


def test_sweep_waits_while_the_workers_are_behind(platform: Platform, private_queue: str) -> None:
    sale = platform.sale(stock=3)
    order_id = reserve_without_message(platform, sale, "eli")
    client = platform.redis
    client.lpush(private_queue, *[b"waiting"] * 5)
    assert sweep(platform.sessions, platform.stock, client, private_queue, 0, max_backlog=4) == 0
    assert client.lrange(private_queue, 0, -1) == [b"waiting"] * 5
    assert sweep(platform.sessions, platform.stock, client, private_queue, 0, max_backlog=5) >= 1
    assert times_queued(platform, private_queue, sale, order_id, skip=b"waiting") == 1


def test_sweep_republishes_each_segment_of_a_spread_sale_under_its_own_name(
    platform: Platform, private_queue: str
) -> None:
    from flashsale.stock import home, segment_name

    sale = platform.sale(stock=30, segments=3, perUserLimit=5)
    waiting: dict[str, set[str]] = {}
    for i in range(12):
        user = f"seg-{i}"
        segment = segment_name(sale, home(user, 3), 3)
        waiting.setdefault(segment, set()).add(reserve_without_message(platform, segment, user))
    assert len(waiting) == 3
    sweep(platform.sessions, platform.stock, platform.redis, private_queue, 0)
    queued: dict[str, set[str]] = {}
    for name, order_ids in queued_args(platform, private_queue):
        if name.partition("/")[0] == sale:
            queued.setdefault(name, set()).update(order_ids)
    assert queued == waiting
