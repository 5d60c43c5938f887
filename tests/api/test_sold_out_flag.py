"""The API's local sold-out flag: late clicks are answered without Redis, but never for
longer than the flag's lifetime once units come back, and never for a smaller quantity
or a repeated Idempotency-Key."""

from __future__ import annotations

import asyncio
import time

import httpx

from flashsale.api.soldout import SoldOutFlags
from flashsale.settings import Settings
from tests.conftest import Platform, auth

LIFETIME = Settings().sold_out_cache_seconds


async def _buy(client: httpx.AsyncClient, sale: str, user: str, **kwargs: object) -> httpx.Response:
    headers = auth(user) | dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
    return await client.post(f"/v1/sales/{sale}/reservations", headers=headers, **kwargs)  # type: ignore[arg-type]


async def test_units_that_come_back_are_sold_after_the_flag_lifetime(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    sale = platform.sale(stock=1)
    assert (await _buy(client, sale, "first")).status_code == 202
    late = await _buy(client, sale, "late")
    assert (late.status_code, late.json()["error"]) == (409, "sold_out")
    # One unit comes back (the stock is raised by one, as an expired order would).
    platform.sale(sale, stock=2)
    assert platform.remaining(sale) == 1
    await asyncio.sleep(LIFETIME + 0.1)
    again = await _buy(client, sale, "patient")
    assert again.status_code == 202, again.text
    assert platform.remaining(sale) == 0


async def test_a_smaller_quantity_still_asks_redis(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    sale = platform.sale(stock=2, perUserLimit=5)
    big = await _buy(client, sale, "big", json={"quantity": 3})
    assert (big.status_code, big.json()["error"]) == (409, "sold_out")
    small = await _buy(client, sale, "small", json={"quantity": 2})
    assert small.status_code == 202, small.text
    assert platform.remaining(sale) == 0


async def test_a_repeated_idempotency_key_gets_its_first_answer(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    sale = platform.sale(stock=1)
    key = {"Idempotency-Key": "checkout-1"}
    first = await _buy(client, sale, "kim", headers=key)
    assert first.status_code == 202
    assert (await _buy(client, sale, "lee")).status_code == 409  # the flag is now set
    replay = await _buy(client, sale, "kim", headers=key)
    assert replay.status_code == 202
    assert replay.json()["order_id"] == first.json()["order_id"]


def test_the_flag_never_outlives_its_first_answer() -> None:
    flags = SoldOutFlags(ttl_seconds=0.2)
    assert not flags.refuses("s", 1)
    flags.remember("s", 2)
    assert flags.refuses("s", 2) and flags.refuses("s", 5)
    assert not flags.refuses("s", 1)  # stock may still hold one unit
    flags.remember("s", 1)  # a later refusal lowers the bar, not the deadline
    assert flags.refuses("s", 1)
    time.sleep(0.25)
    assert not flags.refuses("s", 1) and not flags.refuses("s", 2)
    flags.remember("s", 1)
    flags.forget("s")  # an accepted purchase clears it at once
    assert not flags.refuses("s", 1)
    off = SoldOutFlags(ttl_seconds=0)
    off.remember("s", 1)
    assert not off.refuses("s", 1)
