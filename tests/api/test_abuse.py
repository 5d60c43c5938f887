"""Users cannot reach each other's Redis state through crafted ids: a flood from user ids
shaped like another user's keys neither throttles nor fills that user's limit."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.conftest import Platform
from tests.helpers.http import buy

CRAFTED = [
    "victim:",
    "rl:victim",
    "victim}",
    "{victim}",
    "6:victim:k",
    "victim\u200b",  # looks the same, is not
    "VICTIM",
    "受害者",
]


async def test_crafted_user_ids_cannot_touch_another_users_state(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    sale = platform.sale(stock=100, perUserLimit=2, rateLimit={"requestsPerSecond": 1, "burst": 2})
    other = platform.sale(stock=100, perUserLimit=2, rateLimit={"requestsPerSecond": 1, "burst": 2})
    flood = await asyncio.gather(
        *(buy(client, s, user) for user in CRAFTED for s in (sale, other) for _ in range(20))
    )
    codes = Counter(r.status_code for r in flood)
    assert set(codes) <= {202, 409, 429} and codes[429] > 0
    # Each crafted id is its own user: at most its own limit, in each sale.
    assert codes[202] == len(CRAFTED) * 2 * 2
    # The victim is neither throttled nor counted against by any of them.
    key = {"Idempotency-Key": "k"}
    first = await buy(client, sale, "victim", headers=key)
    second = await buy(client, sale, "victim")
    assert (first.status_code, second.status_code) == (202, 202)
    assert (await buy(client, other, "victim")).status_code == 202
    assert platform.remaining(sale) == 100 - len(CRAFTED) * 2 - 2
    # Her idempotency key is hers: the same key from a look-alike is a new purchase.
    twin = await buy(client, sale, "victim\u200b", headers=key)
    assert twin.status_code in (409, 429)  # refused for the twin's own limit or rate
    assert twin.json().get("order_id") != first.json()["order_id"]
