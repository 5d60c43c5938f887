"""Redis restarted in the middle of a sale, with its append-only file: stock and
reservations survive, the API reconnects and reloads its scripts by itself, and clients
that got 503 meanwhile succeed when they retry with the same idempotency key."""

from __future__ import annotations

import asyncio

from flashsale.stock.keys import SaleKeys
from tests.faults.conftest import Stack, click_until_answered, drop_unanswered

DOWN_SECONDS = 3.0


async def test_redis_restart_keeps_stock_and_reservations(stack: Stack) -> None:
    base = stack.start_api()
    # Paced: a worker that holds unacknowledged messages when its broker goes must
    # reconnect and finish them (kombu 5.7 alone shut it down; see worker/transport.py).
    stack.start_worker(FLASHSALE_ORDERS_PER_SECOND="100")
    sale = stack.sale(stock=300)
    async with stack.watch(sale, 300) as timeline, stack.crowd(base, sale) as crowd:
        await asyncio.gather(*(crowd.click(1, f"before-{i}", "k") for i in range(150)))
        remaining_before = stack.client.get(SaleKeys(sale).stock)

        stack.redis.stop()
        stack.faults.append(f"Redis stopped for {DOWN_SECONDS:.0f} s, then restarted (AOF)")
        buyers = [
            asyncio.create_task(click_until_answered(crowd, f"during-{i}", "k")) for i in range(100)
        ]
        await asyncio.sleep(DOWN_SECONDS)
        stack.redis.start()  # same port and folder: the append-only file is replayed
        assert stack.client.get(SaleKeys(sale).stock) is not None
        assert not stack.client.script_exists(  # the API must reload its scripts
            "0" * 40
        )[0]
        answered = await asyncio.gather(*buyers)
        await asyncio.gather(*(crowd.click(1, f"after-{i}", "k") for i in range(100)))
        await asyncio.to_thread(stack.settle, sale, 300)
    assert remaining_before == b"150"
    assert stack.order_count(sale) == 300
    retried = drop_unanswered(crowd)
    assert retried == sum(misses for _, misses in answered) > 0
    stack.record("Redis restarted mid-sale", crowd, timeline, tries_answered_503=retried)
