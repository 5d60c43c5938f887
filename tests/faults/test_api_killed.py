"""The API process killed with SIGKILL between the reserve script and the publish, and in
the middle of a flood: a client retrying with its idempotency key gets the same order,
sweep persists what was never published, and every 202 is exactly one order."""

from __future__ import annotations

import asyncio
import signal

import redis

from flashsale.stock.keys import SaleKeys
from tests.conftest import wait_for
from tests.faults.conftest import Stack, click_until_answered, drop_unanswered


async def test_api_killed_after_the_script_before_the_publish(stack: Stack) -> None:
    broker = stack.redis_server("broker")
    env = {
        "FLASHSALE_HANDOFF": "publish",
        "FLASHSALE_BROKER_URL": broker.url,
        "FLASHSALE_PUBLISH_TIMEOUT_SECONDS": "60",  # the publish hangs until the kill
    }
    base = stack.start_api("api-1", **env)
    # Unpaced: this test is about the API and the outbox.
    stack.start_worker(**env, FLASHSALE_ORDERS_PER_SECOND="100000")
    sale = stack.sale(stock=50)
    assert broker.proc is not None
    async with stack.watch(sale, 50) as timeline, stack.crowd(base, sale) as crowd:
        broker.proc.send_signal(signal.SIGSTOP)
        pending = [asyncio.create_task(crowd.click(1, f"u{i}", "k")) for i in range(20)]
        # Every script call has succeeded; every publish is stuck.
        await asyncio.to_thread(wait_for, lambda: stack.client.zcard(SaleKeys(sale).outbox) == 20)
        reserved = {m.decode() for m in stack.client.zrange(SaleKeys(sale).outbox, 0, -1)}
        stack.processes["api-1"].stop(signal.SIGKILL)
        stack.faults.append("API SIGKILLed between the reserve script and the publish")
        lost = await asyncio.gather(*pending)
        assert all(click.status == 0 for click in lost)  # nobody got an answer
        broker.proc.send_signal(signal.SIGCONT)

        await crowd.reconnect(stack.start_api("api-2", **env))
        retried = await asyncio.gather(
            *(click_until_answered(crowd, f"u{i}", "k") for i in range(20))
        )
        # The retry with the same idempotency key gets the reservation the script made.
        assert {click.order_id for click, _ in retried} == reserved
        await asyncio.to_thread(stack.settle, sale, 20, 90.0, redis.Redis.from_url(broker.url))
    assert stack.order_count(sale) == 20
    drop_unanswered(crowd)
    stack.record("API killed between script and publish", crowd, timeline)


async def test_api_killed_in_the_middle_of_a_flood(stack: Stack) -> None:
    base = stack.start_api("api-1")
    stack.start_worker()
    sale = stack.sale(stock=300)
    async with stack.watch(sale, 300) as timeline, stack.crowd(base, sale) as crowd:
        buyers = [asyncio.create_task(crowd.click(1, f"u{i}", "k")) for i in range(400)]
        await asyncio.to_thread(wait_for, lambda: len(crowd.log.clicks) >= 100, 30.0, 0.01)
        stack.processes["api-1"].stop(signal.SIGKILL)
        stack.faults.append("API SIGKILLed during a flood of 400 buyers")
        first = await asyncio.gather(*buyers)
        unanswered = [click.user for click in first if click.status == 0]
        assert unanswered, "the kill came too late to matter"
        await crowd.reconnect(stack.start_api("api-2"))
        await asyncio.gather(*(click_until_answered(crowd, user, "k") for user in unanswered))
        accepted = len({c.order_id for c in crowd.log.accepted()})
        await asyncio.to_thread(stack.settle, sale, accepted)
    assert accepted == 300
    dropped = drop_unanswered(crowd)
    stack.record("API killed during a flood", crowd, timeline, requests_cut_off_by_the_kill=dropped)
