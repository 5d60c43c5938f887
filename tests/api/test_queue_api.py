"""The waiting room over HTTP: join and poll, buying once admitted, `not_admitted` for
everyone else, the refusals of the contract, and bad input answered as everywhere else."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Platform, auth
from tests.helpers.room import at, room

FIELDS = {
    "sale",
    "status",
    "position",
    "ahead",
    "estimated_wait_seconds",
    "chance",
    "poll_after_seconds",
}


async def test_join_poll_buy(platform: Platform, client: httpx.AsyncClient) -> None:
    sale = platform.sale(stock=2, waitingRoom=room(admitPerSecond=1))
    joined = [await client.post(f"/v1/sales/{sale}/queue", headers=auth(u)) for u in "abc"]
    assert [r.status_code for r in joined] == [202, 202, 202]
    assert set(joined[0].json()) == FIELDS
    again = await client.post(f"/v1/sales/{sale}/queue", headers=auth("c"))
    assert again.json()["position"] == joined[2].json()["position"]  # the same place
    polled = await client.get(f"/v1/sales/{sale}/queue", headers=auth("a"))
    assert polled.status_code == 200 and polled.json()["status"] == "admitted"
    assert polled.json()["admitted_until"].endswith("Z")
    waiting = (await client.get(f"/v1/sales/{sale}/queue", headers=auth("c"))).json()
    assert waiting["status"] == "waiting" and waiting["position"] >= 1
    assert 0 < waiting["chance"] <= 1 and waiting["poll_after_seconds"] >= 1
    refused = await client.post(f"/v1/sales/{sale}/reservations", headers=auth("c"))
    assert refused.status_code == 409 and refused.json()["error"] == "not_admitted"
    stranger = await client.post(f"/v1/sales/{sale}/reservations", headers=auth("zed"))
    assert stranger.json()["error"] == "not_admitted"
    bought = await client.post(f"/v1/sales/{sale}/reservations", headers=auth("a"))
    assert bought.status_code == 202, bought.text


async def test_the_refusals_of_the_contract(platform: Platform, client: httpx.AsyncClient) -> None:
    plain = platform.sale(stock=2)
    r = await client.post(f"/v1/sales/{plain}/queue", headers=auth("a"))
    assert (r.status_code, r.json()["error"]) == (409, "no_waiting_room")
    later = platform.sale(stock=2, startsAt=at(60), waitingRoom=room(opensAt=at(30)))
    r = await client.post(f"/v1/sales/{later}/queue", headers=auth("a"))
    assert (r.status_code, r.json()["error"]) == (409, "not_open")
    r = await client.post("/v1/sales/no-such-sale/queue", headers=auth("a"))
    assert (r.status_code, r.json()["error"]) == (404, "unknown_sale")
    queued = platform.sale(stock=2, waitingRoom=room())
    r = await client.get(f"/v1/sales/{queued}/queue", headers=auth("never-joined"))
    assert (r.status_code, r.json()["error"]) == (404, "not_in_queue")
    r = await client.post(f"/v1/sales/{queued}/queue")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = await client.post("/v1/sales/Bad%00Name/queue", headers=auth("a"))
    assert r.status_code == 404 and r.json()["error"] == "unknown_sale"


async def test_the_draw_is_pending_before_the_start(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    sale = platform.sale(stock=2, startsAt=at(60), waitingRoom=room(order="draw"))
    answers = await asyncio.gather(
        *(client.post(f"/v1/sales/{sale}/queue", headers=auth(f"d{i}")) for i in range(5))
    )
    assert {a.status_code for a in answers} == {202}
    assert {a.json()["position"] for a in answers} == {None}  # no place before the draw
    assert {a.json()["status"] for a in answers} == {"waiting"}
