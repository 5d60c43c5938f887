"""Joining and polling a sale's waiting room: what both ways in (the fast path and the
documented routes) answer, decided once here, as admission.py does for purchases.

Each answer is one call of queue.lua (those of one moment together; with segments, one
read of every segment's units first), which also advances the room's gate: the crowd's
polling is what lets shoppers in. A shopper who polls again sooner than a second after
their last answer gets that answer again from this process's memory: the gate moves on
others' calls, and the page polls no faster than `poll_after_seconds` anyway."""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis

from flashsale.api.errors import ApiError
from flashsale.api.metrics import ROOM_CALLS
from flashsale.api.services import Services
from flashsale.spec import is_valid_sale_name
from flashsale.stock import InvalidPurchase
from flashsale.stock.room import RoomAnswer
from flashsale.timefmt import rfc3339_ms

# A poll answered again from memory within this many seconds of the last one.
REPEAT_SECONDS = 1.0
RECENT_MAX = 100_000

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


async def _room_call(services: Services, op: str, sale: str, user: str) -> RoomAnswer:
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


class RecentPolls:
    """The last poll answer of each shopper of this process, for REPEAT_SECONDS."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str], tuple[float, bytes]] = {}

    def get(self, sale: str, user: str) -> bytes | None:
        found = self._answers.get((sale, user))
        if found is None or time.monotonic() - found[0] > REPEAT_SECONDS:
            return None
        return found[1]

    def put(self, sale: str, user: str, body: bytes) -> None:
        if len(self._answers) >= RECENT_MAX:  # a crowd of one-off pollers: start afresh
            self._answers.clear()
        self._answers[(sale, user)] = (time.monotonic(), body)


RECENT = RecentPolls()


async def join_room(services: Services, sale: str, user: str) -> bytes:
    """The body of a 202 for a join, or ApiError."""
    answer = await _room_call(services, "join", sale, user)
    if answer.status == "sold_out":
        raise ApiError(409, "sold_out", "no units left, and none can come back")
    return orjson.dumps(_body(sale, answer, with_until=False))


async def poll_room(services: Services, sale: str, user: str) -> bytes:
    """The body of a 200 for a poll, or ApiError."""
    repeated = RECENT.get(sale, user)
    if repeated is not None:
        ROOM_CALLS.labels("poll", "repeated").inc()
        return repeated
    answer = await _room_call(services, "poll", sale, user)
    body = orjson.dumps(_body(sale, answer, with_until=True))
    RECENT.put(sale, user, body)
    return body
