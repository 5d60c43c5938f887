"""Every refusal of the contract, and bad input: a clear 4xx with an error code, never 5xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import Platform, auth


def _at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


async def _buy(client: httpx.AsyncClient, sale: str, **kwargs: object) -> httpx.Response:
    kwargs.setdefault("headers", auth("erin"))
    return await client.post(f"/v1/sales/{sale}/reservations", **kwargs)  # type: ignore[arg-type]


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) >= {"error", "detail"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    return response.status_code, body["error"]


async def test_sale_phase_refusals(platform: Platform, client: httpx.AsyncClient) -> None:
    scheduled = platform.sale(startsAt=_at(timedelta(hours=1)))
    ended = platform.sale(startsAt=_at(-timedelta(hours=2)), endsAt=_at(-timedelta(hours=1)))
    paused = platform.sale(paused=True)
    sold_out = platform.sale(stock=0)
    assert _error(await _buy(client, scheduled)) == (409, "not_started")
    assert _error(await _buy(client, ended)) == (409, "ended")
    assert _error(await _buy(client, paused)) == (409, "paused")
    assert _error(await _buy(client, sold_out)) == (409, "sold_out")
    assert _error(await _buy(client, "no-such-sale")) == (404, "unknown_sale")
    for sale in (scheduled, ended, paused):
        assert platform.remaining(sale) == 10


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"quantity": "1"}', "application/json"),
        (b'{"quantity": 1.5}', "application/json"),
        (b'{"quantity": 0}', "application/json"),
        (b'{"quantity": -3}', "application/json"),
        (b'{"quantity": 100000000000000000000}', "application/json"),
        (b'{"quantity": true}', "application/json"),
        (b'{"quantity": 1, "extra": 1}', "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"quantity"', "application/json"),
        (b"[" * 5000 + b"]" * 5000, "application/json"),
        (b"quantity=1", "application/x-www-form-urlencoded"),
        (b"\xff\xfe not text", "application/json"),
    ],
)
async def test_bad_bodies_are_422_and_take_nothing(
    platform: Platform, client: httpx.AsyncClient, body: bytes, content_type: str
) -> None:
    sale = platform.sale()
    r = await _buy(
        client, sale, content=body, headers=auth("erin") | {"Content-Type": content_type}
    )
    assert r.status_code in (413, 422), r.text
    assert _error(r)[1] in ("invalid_request", "body_too_large")
    assert platform.remaining(sale) == 10


async def test_a_whole_number_written_as_2_0_is_a_quantity(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """JSON (and the OpenAPI schema's `integer`) make no difference between 2 and 2.0."""
    sale = platform.sale(perUserLimit=5)
    r = await _buy(
        client,
        sale,
        content=b'{"quantity": 2.0}',
        headers=auth("gil") | {"Content-Type": "application/json"},
    )
    assert r.status_code == 202 and r.json()["quantity"] == 2
    assert platform.remaining(sale) == 8


async def test_huge_body_is_413(platform: Platform, client: httpx.AsyncClient) -> None:
    sale = platform.sale()
    r = await _buy(
        client,
        sale,
        content=b'{"quantity": 1, "x": "' + b"a" * 100_000 + b'"}',
        headers=auth("erin") | {"Content-Type": "application/json"},
    )
    assert _error(r) == (413, "body_too_large")

    async def chunks():  # no Content-Length: the limit must still hold
        for _ in range(100):
            yield b"a" * 1000

    r = await _buy(
        client, sale, content=chunks(), headers=auth("erin") | {"Content-Type": "application/json"}
    )
    assert _error(r) == (413, "body_too_large")
    assert platform.remaining(sale) == 10


@pytest.mark.parametrize("name", ["../etc/passwd", "UPPER", "a}b", "fs:{x}", "%2e%2e", "日本"])
async def test_odd_sale_names_are_unknown(client: httpx.AsyncClient, name: str) -> None:
    r = await _buy(client, name)
    assert r.status_code == 404
    assert r.json()["error"] in ("unknown_sale", "not_found")


@pytest.mark.parametrize("key", ["", "a" * 201, "with space", "tab\tkey"])
async def test_bad_idempotency_keys(
    platform: Platform, client: httpx.AsyncClient, key: str
) -> None:
    sale = platform.sale()
    r = await _buy(client, sale, headers=auth("erin") | {"Idempotency-Key": key})
    assert _error(r) == (422, "invalid_request")
    assert platform.remaining(sale) == 10


async def test_unknown_order_and_other_users_orders(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    sale = platform.sale()
    r = await _buy(client, sale, headers=auth("owner"))
    order = r.json()["order_id"]
    for path in (
        f"/v1/orders/{order}",
        "/v1/orders/not-a-uuid",
        "/v1/orders/00000000-0000-0000-0000-000000000000",
    ):
        got = await client.get(path, headers=auth("stranger"))
        assert _error(got) == (404, "unknown_order")
    paid = await client.post(f"/v1/orders/{order}/payment", headers=auth("stranger"))
    assert _error(paid) == (404, "unknown_order")
    assert (await client.get(f"/v1/orders/{order}", headers=auth("owner"))).status_code == 200


async def test_unknown_sale_status(client: httpx.AsyncClient) -> None:
    assert _error(await client.get("/v1/sales/nope")) == (404, "unknown_sale")


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/nothing")).json()["error"] == "not_found"
    r = await client.delete("/v1/sales/x")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


async def test_a_trailing_slash_is_not_found_and_never_redirected(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """Starlette would redirect to the path without the slash, building the Location from
    the Host header the client chose."""
    sale = platform.sale(stock=3)
    answer = await client.post(
        f"/v1/sales/{sale}/reservations/",
        headers=auth("slash") | {"Host": "evil.example"},
    )
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert answer.json()["error"] == "not_found"
    assert platform.remaining(sale) == 3


async def test_a_long_user_id_of_emoji_can_buy_with_a_token_the_product_issues(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    sale = platform.sale(stock=3)
    user = "\U0001f600" * 255  # the longest valid id, escaped by the token issuer
    answer = await client.post(f"/v1/sales/{sale}/reservations", headers=auth(user))
    assert answer.status_code == 202, answer.text
