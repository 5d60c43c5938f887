"""Refuse oversized request bodies before anything parses them."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flashsale.api.errors import error_response

# A refused chunked body is read (and dropped) up to this much more before answering:
# some servers (granian) reset a connection whose request is still being sent, and the
# client would see that instead of the 413.
DRAIN_BYTES = 1 << 20


async def _discard(receive: Receive, limit: int) -> None:
    dropped = 0
    while dropped <= limit:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))


def declared_too_long(length: bytes, max_bytes: int) -> bool:
    """A Content-Length that is not a number, or is over the limit."""
    return not length.isdigit() or int(length) > max_bytes


def replay_body(body: bytes, receive: Receive, more_body: bool = False) -> Receive:
    """Hand a body already read (all of it, or its start when `more_body`) to the next
    application, then the rest of `receive`."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": more_body}

    return replay


class BodySizeLimit:
    """A declared Content-Length over the limit is refused at once; a body without one
    (chunked) is read up to the limit and then handed on, or refused."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None:
            if declared_too_long(length, self.max_bytes):
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                if message.get("more_body", False):
                    await _discard(receive, DRAIN_BYTES)
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, replay_body(bytes(body), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "body_too_large", f"request body is limited to {self.max_bytes} bytes"
        )
        await response(scope, receive, send)
