"""Redis frozen (SIGSTOP) mid-sale: shoppers get 503 with Retry-After and the order id
the purchase would have had, and none of those purchases happens when Redis resumes, so
no unit is sold behind a shopper's back and their retry is a fresh purchase."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx

from flashsale.sales import sale_status
from flashsale.stock.keys import SaleKeys
from tests.conftest import auth
from tests.faults.conftest import Stack

FROZEN_SECONDS = 6.0


async def test_purchases_answered_503_during_a_freeze_never_happen(stack: Stack) -> None:
    base = stack.start_api()
    stack.start_worker()
    sale = stack.sale(stock=100, perUserLimit=1)
    path = f"/v1/sales/{sale}/reservations"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        before = await asyncio.gather(
            *(client.post(path, headers=auth(f"early-{i}")) for i in range(10))
        )
        assert [r.status_code for r in before] == [202] * 10

        assert stack.redis.proc is not None
        os.kill(stack.redis.proc.pid, signal.SIGSTOP)
        stack.faults.append(f"Redis frozen (SIGSTOP) for {FROZEN_SECONDS:.0f} s")
        frozen_at = time.monotonic()
        try:
            during = await asyncio.gather(
                *(client.post(path, headers=auth(f"frozen-{i}")) for i in range(30)),
                # One through the route rather than the fast path: a body it hands on.
                client.post(
                    path,
                    headers=auth("frozen-route") | {"Content-Type": "application/json"},
                    content=b'{"quantity": 1.0}',
                ),
            )
            slowest = time.monotonic() - frozen_at
            await asyncio.sleep(max(0.0, FROZEN_SECONDS - slowest))
        finally:
            os.kill(stack.redis.proc.pid, signal.SIGCONT)
        await asyncio.sleep(1.0)  # Redis runs what waited in its sockets meanwhile

        assert {r.status_code for r in during} == {503}, [r.text for r in during]
        assert all(r.headers.get("retry-after") == "1" for r in during)
        told = [r.json()["order_id"] for r in during]
        assert len(set(told)) == len(told)
        # Nothing happened for them, and nothing will.
        keys = SaleKeys(sale)
        for order in told:
            assert not stack.client.exists(keys.reservation(order))
        assert int(stack.client.get(keys.stock) or 0) == 90
        users = [f"frozen-{i}" for i in range(30)] + ["frozen-route"]
        looked = await asyncio.gather(
            *(
                client.get(f"/v1/orders/{order}", headers=auth(user))
                for order, user in zip(told, users, strict=True)
            )
        )
        assert {r.status_code for r in looked} == {404}

        # Retrying as told is a fresh purchase, not limit_reached.
        retried = await asyncio.gather(*(client.post(path, headers=auth(u)) for u in users))
        assert [r.status_code for r in retried] == [202] * 31
    await asyncio.to_thread(stack.settle, sale, 41)
    status = sale_status(stack.sessions, stack.stock, sale)
    assert status is not None
    s = status.stock
    assert s.pending_payment + s.paid + s.reserved + s.remaining == 100
    assert s.remaining == 59
    assert stack.order_count(sale) == 41
    assert slowest < 5.0, f"answers took {slowest:.1f} s while Redis was frozen"
