"""The broker down, then frozen, while the API hands reservations over by publishing:
reservations are still accepted within the publish timeout (never a hang), wait in the
outbox, and are persisted after a sweep."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import redis

from tests.faults.conftest import Stack

PUBLISH_TIMEOUT = 0.5


async def test_broker_down_or_frozen_loses_no_reservation(stack: Stack) -> None:
    broker = stack.redis_server("broker")
    env = {
        "FLASHSALE_HANDOFF": "publish",
        "FLASHSALE_BROKER_URL": broker.url,
        "FLASHSALE_PUBLISH_TIMEOUT_SECONDS": str(PUBLISH_TIMEOUT),
    }
    base = stack.start_api(**env)
    # Unpaced: this test is about the API and the outbox.
    stack.start_worker(**env, FLASHSALE_ORDERS_PER_SECOND="100000")
    sale = stack.sale(stock=400)
    async with stack.watch(sale, 400) as timeline, stack.crowd(base, sale) as crowd:
        await asyncio.gather(*(crowd.click(1, f"before-{i}", "k") for i in range(100)))

        broker.stop()
        stack.faults.append("broker stopped")
        down = await asyncio.gather(*(crowd.click(1, f"down-{i}", "k") for i in range(100)))
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["broker"] != "ok"
        broker.start()  # same port, empty: the messages it had are gone

        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)  # accepts connections, never answers
        stack.faults.append("broker frozen (SIGSTOP)")
        frozen = await asyncio.gather(*(crowd.click(1, f"frozen-{i}", "k") for i in range(100)))
        os.kill(broker.proc.pid, signal.SIGCONT)

        await asyncio.gather(*(crowd.click(1, f"after-{i}", "k") for i in range(100)))
        for click in [*down, *frozen]:
            assert click.status == 202, click
            assert click.latency < PUBLISH_TIMEOUT + 1.5, click  # answered, not hung
        await asyncio.to_thread(stack.settle, sale, 400, 90.0, redis.Redis.from_url(broker.url))
    assert stack.order_count(sale) == 400
    stack.record(
        "broker down, then frozen",
        crowd,
        timeline,
        slowest_answer_while_broken_ms=round(max(c.latency for c in [*down, *frozen]) * 1000),
    )
