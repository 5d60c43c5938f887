"""POST /v1/sales/{sale}/reservations, and the waiting room's joins and polls (POST and
GET /v1/sales/{sale}/queue), without the framework's per-request machinery.

FastAPI's dependency solving, parameter validation and threadpool hops cost several
times what deciding the purchase costs (profiled: about 40% of the CPU of a reservation),
and each middleware layer around the application costs a few percent more. This ASGI
layer sits outside all of them and answers the well-formed requests itself: a bearer
token, no body or a small `{"quantity": n}` body, an optional valid Idempotency-Key. It
times them for the latency histogram as the middleware would. Anything else goes on,
untouched, to the application, whose layers and route validate it and answer exactly as
documented (an oversized body included). Both paths call the same `admit`, so they
decide purchases the same way."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from flashsale.api.admission import IDEMPOTENCY_KEY, admit
from flashsale.api.errors import ApiError
from flashsale.api.limits import declared_too_long, replay_body
from flashsale.api.metrics import observe_request
from flashsale.api.queueing import join_room, poll_room
from flashsale.api.schemas import MAX_QUANTITY
from flashsale.api.services import Services

PATH = re.compile(r"^/v1/sales/([^/]+)/reservations$")
ROUTE_TEMPLATE = "/v1/sales/{sale}/reservations"
QUEUE_PATH = re.compile(r"^/v1/sales/([^/]+)/queue$")
QUEUE_TEMPLATE = "/v1/sales/{sale}/queue"


log = logging.getLogger(__name__)


def is_json_media_type(content_type: bytes) -> bool:
    """Whether FastAPI reads a body with this Content-Type as JSON: `application/json` or
    `application/*+json`, parameters after `;` ignored, any case. Worked out as its
    `email.message.Message` does (type/subtype before the `;`, stripped, lowered, exactly
    one `/`), so that the fast path and the route take the same bodies as JSON."""
    media = content_type.decode("latin-1").partition(";")[0].strip().lower()
    if media.count("/") != 1:
        return False
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _quantity(body: bytes, content_type: bytes | None) -> int | None:
    """The quantity of a simple, valid body; None when the full validator must decide."""
    if not body:
        return 1
    if content_type is None or not is_json_media_type(content_type):
        return None
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or not doc.keys() <= {"quantity"}:
        return None
    quantity = doc.get("quantity", 1)
    if type(quantity) is not int or not 1 <= quantity <= MAX_QUANTITY:
        return None
    return quantity


async def _answer(send: Send, status: int, body: bytes, headers: dict[str, str] | None) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if headers:
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class ReservationFastPath:
    def __init__(self, app: FastAPI, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "GET"):
            await self.app(scope, receive, send)
            return
        queue = QUEUE_PATH.match(scope["path"])
        if queue is not None and not scope.get("query_string"):
            await self._queue(scope, receive, send, queue.group(1))
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = PATH.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        authorization = idempotency_key = content_type = length = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"idempotency-key" and idempotency_key is None:
                idempotency_key = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"content-length" and length is None:
                length = value
        if length is not None and declared_too_long(length, self.max_body_bytes):
            await self.app(scope, receive, send)  # the application refuses it (413)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:  # the application refuses it (413)
                await self.app(scope, replay_body(body, receive, more), send)
                return
        quantity = _quantity(body, content_type)
        if quantity is None or (
            idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key)
        ):
            await self.app(scope, replay_body(body, receive), send)
            return
        services: Services = self.app.state.services
        try:
            user = services.verifier.user_of(authorization)
            accepted = await admit(services, match.group(1), user, quantity, idempotency_key)
        except ApiError as exc:
            await _answer(send, exc.status, exc.body(), exc.headers)
            observe_request("POST", ROUTE_TEMPLATE, exc.status, time.perf_counter() - started)
            return
        except Exception:
            log.exception("reservation failed")
            error = orjson.dumps({"error": "internal", "detail": "internal error"})
            await _answer(send, 500, error, None)
            observe_request("POST", ROUTE_TEMPLATE, 500, time.perf_counter() - started)
            return
        await _answer(send, 202, accepted, None)
        observe_request("POST", ROUTE_TEMPLATE, 202, time.perf_counter() - started)

    async def _queue(self, scope: Scope, receive: Receive, send: Send, sale: str) -> None:
        """A join or a poll with a token and no body; anything else goes to the route."""
        started = time.perf_counter()
        method = scope["method"]
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name in (b"content-length", b"transfer-encoding") and value not in (b"0",):
                await self.app(scope, receive, send)  # a body: the route decides
                return
        services: Services = self.app.state.services
        status = 202 if method == "POST" else 200
        try:
            user = services.verifier.user_of(authorization)
            answer = poll_room if method == "GET" else join_room
            body = await answer(services, sale, user)
        except ApiError as exc:
            await _answer(send, exc.status, exc.body(), exc.headers)
            observe_request(method, QUEUE_TEMPLATE, exc.status, time.perf_counter() - started)
            return
        except Exception:
            log.exception("waiting room call failed")
            error = orjson.dumps({"error": "internal", "detail": "internal error"})
            await _answer(send, 500, error, None)
            observe_request(method, QUEUE_TEMPLATE, 500, time.perf_counter() - started)
            return
        await _answer(send, status, body, None)
        observe_request(method, QUEUE_TEMPLATE, status, time.perf_counter() - started)
