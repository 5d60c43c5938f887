"""A whole sale over HTTP: a crowd buys, some pay, the rest expire and are reaped, a second
wave buys the returned units; every invariant of the design is checked at the end."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp

from flashsale.reaper import reap
from flashsale.sales import sale_status
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform, auth, wait_for

STOCK = 60


async def _crowd(api: str, sale: str, users: list[str]) -> list[tuple[str, int, dict[str, Any]]]:
    url = f"{api}/v1/sales/{sale}/reservations"
    headers = {user: auth(user) for user in users}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128)) as session:

        async def buy(user: str) -> tuple[str, int, dict[str, Any]]:
            async with session.post(url, headers=headers[user], json={"quantity": 1}) as r:
                return user, r.status, await r.json()

        return await asyncio.gather(*(buy(u) for u in users))


async def _pay(api: str, orders: list[tuple[str, str]]) -> list[int]:
    async with aiohttp.ClientSession() as session:

        async def pay(user: str, order: str) -> int:
            async with session.post(f"{api}/v1/orders/{order}/payment", headers=auth(user)) as r:
                return r.status

        return await asyncio.gather(*(pay(u, o) for u, o in orders))


async def test_sale_day(platform: Platform, api: str, worker) -> None:
    sale = platform.sale(stock=STOCK, perUserLimit=1, paymentTimeoutSeconds=3)
    first = await _crowd(api, sale, [f"w1-{i}" for i in range(600)])
    accepted = [(user, body["order_id"]) for user, status, body in first if status == 202]
    assert Counter(status for _, status, _ in first) == {202: STOCK, 409: 600 - STOCK}

    wait_for(lambda: len(platform.orders(sale)) == STOCK, timeout=60)
    payers = accepted[: STOCK // 2]
    assert set(await _pay(api, payers)) == {200}

    time.sleep(3.2)  # the others' payment time runs out
    report = reap(platform.sessions, platform.stock)
    assert report.restored >= STOCK - len(payers)
    assert platform.remaining(sale) == STOCK - len(payers)

    second = await _crowd(api, sale, [f"w2-{i}" for i in range(300)])
    second_ok = [body["order_id"] for _, status, body in second if status == 202]
    assert len(second_ok) == STOCK - len(payers)
    all_accepted = {order for _, order in accepted} | set(second_ok)
    wait_for(lambda: len(platform.orders(sale)) == len(all_accepted), timeout=60)

    rows = platform.orders(sale)
    # Every 202 became exactly one order row, and no row exists without a 202.
    assert {str(r["id"]) for r in rows} == all_accepted
    by_status = Counter(r["status"] for r in rows)
    assert by_status == {
        "paid": len(payers),
        "expired": STOCK - len(payers),
        "pending_payment": STOCK - len(payers),
    }
    # Every expired order returned its units exactly once.
    restored = platform.redis.smembers(SaleKeys(sale).restored)
    expired = {str(r["id"]) for r in rows if r["status"] == "expired"}
    assert {m.decode() for m in restored} == expired
    assert all(r["restored_at"] is not None for r in rows if r["status"] == "expired")
    # Conservation at rest, and no oversell.
    figures = sale_status(platform.sessions, platform.stock, sale).stock
    assert figures.reserved == 0 and figures.remaining == 0
    assert figures.paid + figures.pending_payment + figures.reserved + figures.remaining == STOCK
    # No user holds more than the per-user limit in live orders.
    live = Counter(r["user_id"] for r in rows if r["status"] in ("paid", "pending_payment"))
    assert max(live.values()) == 1
