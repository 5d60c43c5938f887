"""Celery workers killed with SIGKILL while they persist orders, again and again: after a
restart and a sweep every accepted reservation is an order, exactly once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

from tests.conftest import descendants
from tests.faults.conftest import Stack

BUYERS = 400
KILLS = 8


async def test_workers_killed_at_random_points_lose_nothing(stack: Stack) -> None:
    base = stack.start_api()
    sale = stack.sale(stock=BUYERS)
    # A slow pace keeps many tasks in the middle of being persisted when the kill comes.
    pace = {"FLASHSALE_ORDERS_PER_SECOND": "60"}
    worker = stack.start_worker(**pace)
    rng = random.Random(11)
    began = time.monotonic()
    async with stack.watch(sale, BUYERS) as timeline, stack.crowd(base, sale) as crowd:
        await asyncio.gather(*(crowd.click(1, f"u{i}", f"k{i}") for i in range(BUYERS)))
        for kill in range(KILLS):
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            assert worker.proc is not None
            if kill % 2 == 0:
                # One pool process dies mid-task: Celery requeues what it held.
                pool = sorted(descendants(worker.proc.pid))
                os.kill(rng.choice(pool), signal.SIGKILL)
                stack.faults.append("SIGKILL a worker pool process")
            else:
                # The whole worker dies: its unacknowledged tasks wait in the broker, the
                # reservations in the outbox; sweep hands them out again.
                worker.stop(signal.SIGKILL)
                stack.faults.append("SIGKILL the whole worker")
                worker = stack.start_worker(f"worker-{kill}", **pace)
        persisted_before_recovery = stack.order_count(sale)
        worker.stop(signal.SIGKILL)
        stack.start_worker("worker-final", FLASHSALE_ORDERS_PER_SECOND="2000")
        await asyncio.to_thread(stack.settle, sale, BUYERS)

    assert len(crowd.log.accepted()) == BUYERS
    assert stack.order_count(sale) == BUYERS
    stack.record(
        "worker killed mid-persist",
        crowd,
        timeline,
        persisted_while_killing=persisted_before_recovery,
        seconds=round(time.monotonic() - began, 1),
    )
