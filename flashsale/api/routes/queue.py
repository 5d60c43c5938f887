"""The waiting room's endpoints: join (POST) and poll (GET) /v1/sales/{sale}/queue.

Each is one call of queue.lua (with segments, one read of every segment's units first),
which also advances the room's gate: the crowd's polling is what lets shoppers in."""

from __future__ import annotations

from typing import Any

import orjson
import redis
from fastapi import APIRouter
from starlette.responses import Response

from flashsale.api.deps import CurrentUser, ServicesDep
from flashsale.api.errors import ApiError, error_doc
from flashsale.api.metrics import ROOM_CALLS
from flashsale.api.schemas import QueueOut
from flashsale.spec import is_valid_sale_name
from flashsale.stock import InvalidPurchase
from flashsale.stock.room import RoomAnswer
from flashsale.timefmt import rfc3339_ms

router = APIRouter(tags=["waiting room"])

RETRY_AFTER = {"Retry-After": "1"}
# How often a shopper polls: every second near the front, at most every 20 s far back.
POLL_MIN, POLL_MAX = 1, 20
REFUSED = {
    "not_open": (409, "the waiting room is not open yet"),
    "ended": (409, "the sale has ended"),
    "unknown_sale": (404, "no such sale"),
    "no_waiting_room": (409, "this sale has no waiting room: buy directly"),
    "not_in_queue": (404, "you have not joined this sale's waiting room"),
}


def _body(sale: str, answer: RoomAnswer, with_until: bool) -> dict[str, Any]:
    rate = max(answer.rate_milli, 1) / 1000
    ahead = answer.ahead
    wait = ahead / rate if answer.status == "waiting" else 0.0
    if answer.status in ("waiting", "admitted"):
        chance = min(1.0, answer.possible / (ahead + 1)) if answer.possible > 0 else 0.0
    else:
        chance = 0.0
    poll_after = POLL_MIN
    if answer.status == "waiting":
        poll_after = int(min(POLL_MAX, max(POLL_MIN, wait / 5)))
    body: dict[str, Any] = {
        "sale": sale,
        "status": answer.status,
        "position": answer.position or None,  # null while the draw is pending
        "ahead": ahead if answer.position else None,
        "estimated_wait_seconds": round(wait, 1) if answer.position else None,
        "chance": round(chance, 4),
        "poll_after_seconds": poll_after,
    }
    if with_until:
        until = answer.admitted_until_ms
        body["admitted_until"] = rfc3339_ms(until) if until else None
    return body


async def _room_call(services: Any, op: str, sale: str, user: str) -> RoomAnswer:
    if not is_valid_sale_name(sale):
        raise ApiError(404, "unknown_sale", "no such sale")
    try:
        call = services.fast_stock.room.join if op == "join" else services.fast_stock.room.poll
        answer: RoomAnswer = await call(sale, user)
    except InvalidPurchase as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    except redis.RedisError as exc:
        ROOM_CALLS.labels(op, "unavailable").inc()
        detail = f"waiting room unavailable, retry: {exc}"
        raise ApiError(503, "unavailable", detail, RETRY_AFTER) from None
    ROOM_CALLS.labels(op, answer.status).inc()
    if answer.status in REFUSED:
        status, detail = REFUSED[answer.status]
        raise ApiError(status, answer.status, detail)
    return answer


@router.post(
    "/v1/sales/{sale}/queue",
    status_code=202,
    response_model=QueueOut,
    responses={
        404: error_doc("unknown_sale"),
        409: error_doc("not_open", "sold_out", "ended", "no_waiting_room"),
        401: error_doc("unauthorized"),
        503: error_doc("unavailable"),
    },
)
async def join(sale: str, user: CurrentUser, services: ServicesDep) -> Response:
    """Join the sale's waiting room; joining again returns the same place."""
    answer = await _room_call(services, "join", sale, user)
    if answer.status == "sold_out":
        raise ApiError(409, "sold_out", "no units left, and none can come back")
    return _json(_body(sale, answer, with_until=False), 202)


@router.get(
    "/v1/sales/{sale}/queue",
    response_model=QueueOut,
    responses={
        404: error_doc("unknown_sale", "not_in_queue"),
        409: error_doc("ended", "no_waiting_room"),
        401: error_doc("unauthorized"),
        503: error_doc("unavailable"),
    },
)
async def poll(sale: str, user: CurrentUser, services: ServicesDep) -> Response:
    """Your place in the waiting room now: waiting, admitted (until when), expired or
    sold_out."""
    answer = await _room_call(services, "poll", sale, user)
    return _json(_body(sale, answer, with_until=True), 200)


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
