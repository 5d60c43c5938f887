"""The reservation endpoint over real HTTP, under real concurrency."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp

from flashsale.sales import sale_status
from tests.conftest import Platform, auth, wait_for
from tests.helpers.http import buy


async def test_thousand_buyers_never_oversell(platform: Platform, api: str, worker) -> None:
    sale = platform.sale(stock=50, perUserLimit=1)
    buyers = [f"buyer-{i}" for i in range(1200)]
    headers = {user: auth(user) for user in buyers}
    url = f"{api}/v1/sales/{sale}/reservations"

    # aiohttp rather than httpx here: its client keeps up with the server at this scale.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def buy(user: str) -> tuple[int, dict[str, str]]:
            async with session.post(url, headers=headers[user]) as response:
                return response.status, await response.json()

        started = time.perf_counter()
        responses = await asyncio.gather(*(buy(user) for user in buyers))
        elapsed = time.perf_counter() - started
    codes = Counter(status for status, _ in responses)
    errors = Counter(body.get("error") for status, body in responses if status != 202)
    assert codes == {202: 50, 409: 1150}, codes
    assert errors == {"sold_out": 1150}
    accepted = {body["order_id"] for status, body in responses if status == 202}
    assert len(accepted) == 50
    print(
        f"\n1200 concurrent buyers over 256 connections: {len(responses) / elapsed:.0f} requests/s"
    )

    wait_for(lambda: len(platform.orders(sale)) == 50, timeout=60)
    rows = platform.orders(sale)
    assert {str(r["id"]) for r in rows} == accepted
    assert {r["status"] for r in rows} == {"pending_payment"}
    wait_for(lambda: sale_status(platform.sessions, platform.stock, sale).stock.reserved == 0)
    figures = sale_status(platform.sessions, platform.stock, sale).stock
    assert figures.remaining == 0
    assert figures.paid + figures.pending_payment + figures.reserved + figures.remaining == 50


async def test_per_user_limit_under_concurrency(platform: Platform, client, worker) -> None:
    sale = platform.sale(stock=100, perUserLimit=2)
    responses = await asyncio.gather(*(buy(client, sale, "greedy") for _ in range(50)))
    codes = Counter(r.status_code for r in responses)
    assert codes == {202: 2, 409: 48}
    assert {r.json()["error"] for r in responses if r.status_code == 409} == {"limit_reached"}
    assert platform.remaining(sale) == 98
    wait_for(lambda: len(platform.orders(sale)) == 2)


async def test_quantity_above_limit_is_refused(platform: Platform, client) -> None:
    sale = platform.sale(stock=100, perUserLimit=2)
    r = await buy(client, sale, "u1", json={"quantity": 3})
    assert (r.status_code, r.json()["error"]) == (409, "limit_reached")
    r = await buy(client, sale, "u1", json={"quantity": 2})
    assert r.status_code == 202 and r.json()["quantity"] == 2
    assert platform.remaining(sale) == 98


async def test_idempotency_key_under_concurrency(platform: Platform, client, worker) -> None:
    sale = platform.sale(stock=10, perUserLimit=5)
    key = {"Idempotency-Key": "checkout-42"}
    responses = await asyncio.gather(*(buy(client, sale, "carol", headers=key) for _ in range(30)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["order_id"] for r in responses}) == 1
    assert platform.remaining(sale) == 9
    # Another user with the same key is another purchase.
    other = await buy(client, sale, "dave", headers=key)
    assert other.status_code == 202
    assert other.json()["order_id"] != responses[0].json()["order_id"]
    wait_for(lambda: len(platform.orders(sale)) == 2)


async def test_rate_limit_answers_429_with_retry_after(platform: Platform, client) -> None:
    sale = platform.sale(
        stock=100, perUserLimit=100, rateLimit={"requestsPerSecond": 1, "burst": 3}
    )
    responses = [await buy(client, sale, "spammer") for _ in range(6)]
    codes = [r.status_code for r in responses]
    assert codes[:3] == [202, 202, 202]
    assert codes[3:] == [429, 429, 429]
    limited = responses[3]
    assert limited.json()["error"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert platform.remaining(sale) == 97
    # Another user is not affected by the spammer.
    assert (await buy(client, sale, "patient")).status_code == 202


async def test_flood_from_one_user_takes_no_more_than_the_limit(
    platform: Platform, client, worker
) -> None:
    sale = platform.sale(stock=100, perUserLimit=1, rateLimit={"requestsPerSecond": 2, "burst": 5})
    responses = await asyncio.gather(*(buy(client, sale, "flooder") for _ in range(300)))
    codes = Counter(r.status_code for r in responses)
    assert codes[202] == 1
    assert codes[429] >= 250  # a burst of 5 and 2/s refill: nearly all are throttled
    assert codes[409] + codes[429] == 299
    assert set(codes) <= {202, 409, 429}
    assert platform.remaining(sale) == 99
