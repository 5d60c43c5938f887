"""Who gets in: user ids and token lifetimes are checked at the door, on every route."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from flashsale.ids import MAX_USER_ID, MAX_USER_ID_BYTES, user_id_problem
from tests.conftest import JWT_SECRET, Platform, auth, start_api, token
from tests.helpers.tokens import signed

ORDER = "00000000-0000-4000-8000-000000000000"


def raw_token(sub_json: str, exp: int | None = None, secret: str = JWT_SECRET) -> str:
    """An HS256 token whose claims are written by hand, so that `sub_json` (JSON text,
    escapes and all) reaches the server exactly as written: PyJWT cannot encode a lone
    surrogate itself."""
    exp = int(time.time()) + 3600 if exp is None else exp
    return signed(f'{{"sub":{sub_json},"exp":{exp}}}', secret)


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


# JSON text of each refused `sub`.
BAD_SUBS = {
    "nul": r'"\u0000"',
    "nul_inside": r'"al\u0000ice"',
    "lone_high_surrogate": r'"\ud800"',
    "lone_low_surrogate": r'"x\udc00"',
    "tab": r'"a\tb"',
    "newline": r'"alice\nadmin"',
    "carriage_return": r'"alice\r"',
    "del": r'"alice\u007f"',
    "next_line_c1": r'"alice\u0085"',
    "line_separator": r'"a\u2028b"',
    "noncharacter": r'"a\uffff"',
    "whitespace_only": r'"   "',
    "ideographic_space_only": r'"\u3000"',
    "empty": r'""',
    "too_long": json.dumps("u" * (MAX_USER_ID + 1)),
    "number": "42",
    "null": "null",
}


def _assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "unauthorized" and body["detail"]


@pytest.mark.parametrize("name", sorted(BAD_SUBS))
async def test_bad_user_ids_are_401_on_every_route(
    platform: Platform, client: httpx.AsyncClient, name: str
) -> None:
    sale = platform.sale(stock=5, perUserLimit=5)
    headers = bearer(raw_token(BAD_SUBS[name]))
    for _ in range(2):  # the second time too: a refused token is never cached as a user
        # The fast path (no body, then a simple body) and the route (a body only it takes).
        _assert_unauthorized(await client.post(f"/v1/sales/{sale}/reservations", headers=headers))
        _assert_unauthorized(
            await client.post(
                f"/v1/sales/{sale}/reservations", json={"quantity": 1}, headers=headers
            )
        )
        _assert_unauthorized(
            await client.post(
                f"/v1/sales/{sale}/reservations",
                content=b'{"quantity": 1.0}',
                headers={**headers, "Content-Type": "application/json"},
            )
        )
        _assert_unauthorized(await client.get(f"/v1/orders/{ORDER}", headers=headers))
        _assert_unauthorized(await client.post(f"/v1/orders/{ORDER}/payment", headers=headers))
    assert platform.remaining(sale) == 5


@pytest.mark.parametrize(
    "user",
    [
        "Zoë O'Neil",  # non-ASCII letters, inner space, punctuation
        "家族👨\u200d👩\u200d👧",  # CJK and an emoji sequence joined by U+200D (format)
        "a" * MAX_USER_ID,
        "é" * MAX_USER_ID,  # twice as long in UTF-8 bytes as in characters
        "😀" * 100,  # four bytes each, in UTF-16 a surrogate pair each
        " padded ",
    ],
)
async def test_good_user_ids_buy_and_read_their_order(
    platform: Platform, client: httpx.AsyncClient, user: str
) -> None:
    assert user_id_problem(user) is None
    assert len(user.encode()) <= MAX_USER_ID_BYTES
    sale = platform.sale(stock=2)
    r = await client.post(f"/v1/sales/{sale}/reservations", headers=auth(user))
    assert r.status_code == 202, r.text
    order = r.json()["order_id"]
    view = await client.get(f"/v1/orders/{order}", headers=auth(user))
    assert view.status_code == 200 and view.json()["order_id"] == order


def test_the_rule_refuses_what_the_door_refuses() -> None:
    for name, sub_json in BAD_SUBS.items():
        assert user_id_problem(json.loads(sub_json)) is not None, name
    assert user_id_problem("alice") is None


@pytest.mark.parametrize(
    ("name", "claims"),
    [
        ("no_exp", {"sub": "alice"}),
        ("no_exp_but_iat", {"sub": "alice", "iat": 1}),
        ("exp_as_string", {"sub": "alice", "exp": "99999999999"}),
        ("exp_as_bool", {"sub": "alice", "exp": True}),
    ],
)
async def test_tokens_without_a_numeric_exp_are_401(
    platform: Platform, client: httpx.AsyncClient, name: str, claims: dict[str, object]
) -> None:
    sale = platform.sale()
    headers = bearer(jwt.encode(claims, JWT_SECRET, "HS256"))
    _assert_unauthorized(await client.post(f"/v1/sales/{sale}/reservations", headers=headers))
    _assert_unauthorized(await client.get(f"/v1/orders/{ORDER}", headers=headers))
    assert platform.remaining(sale) == 10


async def test_bad_ids_do_not_disturb_buyers_at_the_same_time(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    buyers = 60
    sale = platform.sale(stock=buyers, perUserLimit=1)
    bad = [bearer(raw_token(sub)) for sub in BAD_SUBS.values()] * 3
    path = f"/v1/sales/{sale}/reservations"

    async def buy(headers: dict[str, str]) -> int:
        return (await client.post(path, headers=headers)).status_code

    async def read_order(headers: dict[str, str]) -> int:
        return (await client.get(f"/v1/orders/{ORDER}", headers=headers)).status_code

    good_calls = [buy(auth(f"crowd-{i}-{uuid.uuid4().hex[:6]}")) for i in range(buyers)]
    bad_calls = [buy(h) for h in bad] + [read_order(h) for h in bad]
    statuses = await asyncio.gather(*good_calls, *bad_calls)
    assert statuses[:buyers] == [202] * buyers
    assert statuses[buyers:] == [401] * len(bad_calls)
    assert platform.remaining(sale) == 0


@pytest.fixture(scope="module")
def capped_api(platform: Platform, workdir: Path) -> Iterator[str]:
    proc, base = start_api(
        platform, workdir, "api-token-cap", FLASHSALE_MAX_TOKEN_LIFETIME_SECONDS="600"
    )
    yield base
    proc.stop()


async def test_tokens_living_longer_than_the_cap_are_401(
    platform: Platform, capped_api: str
) -> None:
    sale = platform.sale(stock=5, perUserLimit=5)
    path = f"/v1/sales/{sale}/reservations"
    async with httpx.AsyncClient(base_url=capped_api, timeout=30) as client:
        too_long = await client.post(path, headers=bearer(token("capped", ttl=3600)))
        _assert_unauthorized(too_long)
        assert "lifetime" in too_long.json()["detail"]
        years = jwt.encode({"sub": "capped", "exp": 4_000_000_000}, JWT_SECRET, "HS256")
        _assert_unauthorized(await client.get(f"/v1/orders/{ORDER}", headers=bearer(years)))
        assert (
            await client.post(path, headers=bearer(token("capped", ttl=600)))
        ).status_code == 202
        # A few seconds of clock difference between issuer and API are forgiven.
        skewed = bearer(token("capped", ttl=615))
        assert (await client.post(path, headers=skewed)).status_code == 202
    assert platform.remaining(sale) == 3
