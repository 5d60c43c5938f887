"""PostgreSQL stopped for 10 seconds in the middle of a sale: reservations are still
accepted (Redis decides), readiness reports the outage, workers retry, and every accepted
reservation is an order once the database is back."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.faults.conftest import Stack

OUTAGE_SECONDS = 10.0


async def test_sale_goes_on_through_a_database_outage(stack: Stack) -> None:
    base = stack.start_api()
    stack.start_worker()
    sale = stack.sale(stock=300)
    async with stack.watch(sale, 300) as timeline, stack.crowd(base, sale) as crowd:
        await asyncio.gather(*(crowd.click(1, f"before-{i}", "k") for i in range(100)))
        stack.postgres.stop()
        stack.faults.append(f"PostgreSQL stopped for {OUTAGE_SECONDS:.0f} s")
        down_at = time.monotonic()
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("down")
        during = await asyncio.gather(*(crowd.click(1, f"during-{i}", "k") for i in range(150)))
        assert all(click.status == 202 for click in during)  # Redis alone decides
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        stack.postgres.start()
        await asyncio.gather(*(crowd.click(1, f"after-{i}", "k") for i in range(100)))
        await asyncio.to_thread(stack.settle, sale, 300)
    assert stack.order_count(sale) == 300
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        assert (await client.get("/readyz")).status_code == 200
    stack.record("PostgreSQL down 10 s", crowd, timeline, accepted_during_outage=150)
