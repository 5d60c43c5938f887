"""The outermost ASGI layer: a request body that cannot be read gets a JSON 4xx.

What the HTTP server does with a body it cannot read, measured with raw sockets against
`flashsale api`:

- granian (the default server) hands the application `http.disconnect` in place of the
  body when the chunked encoding is malformed (`zz` or an overflowing chunk size); its
  `receive()` does not raise. An application that then returns without answering makes
  granian answer a plain-text `500 Internal server error` itself, with no log line. So a
  `http.disconnect` that comes before the whole body is answered here, `400 bad_request`.
  The same message also means a client that went away mid-body; the answer then reaches
  nobody, which costs nothing.
- Both servers wait for a body cut short (Content-Length 14, five bytes sent, the
  connection left open) for as long as the client keeps the connection open: granian's
  only timeout is for reading the headers. So a body not complete within
  FLASHSALE_BODY_TIMEOUT_SECONDS of the start of the request is answered
  `408 request_timeout`, with `Connection: close`. uvicorn then closes the connection;
  granian mostly does, but in about one run in four keeps it open until the client
  leaves (its own doing: the application has no way to close it).
- A server whose `receive()` raises on a bad body (the ASGI spec allows it) gets the same
  `400`.

Either way the application is then told `http.disconnect` and stops, and whatever it
still sends is dropped; if it had already begun its own answer, that answer stands and
nothing more is sent. Every such request logs one WARNING line (without the body), at
most LOG_LINES_PER_SECOND a second, the rest counted into the next line.

What stays server-owned, before any application code runs: granian answers an empty
`400` (not JSON) to a request it cannot parse at all (a bad header line, a Content-Length
that is not a number); uvicorn answers a plain-text `400 Invalid HTTP request received.`
to those and to malformed chunked bodies itself. Neither server has an option to shape
those answers; both are 4xx.

Only requests that may carry a body are guarded (every method but GET and HEAD, and those
two when they declare one), so reads pay nothing. A reservation pays one small object,
a set entry and a wrapped `receive`: 1.7 to 2.8 µs with a stand-in server under uvloop,
against the 55 to 67 µs of server CPU a reservation costs (BENCHMARKS.md). The deadline
is kept by one sweep per process, not a timer per request (see RequestGuard._watch)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flashsale.api.errors import error_body

log = logging.getLogger(__name__)

LOG_LINES_PER_SECOND = 10
_BODY_HEADERS = (b"content-length", b"transfer-encoding")


class _LogBudget:
    """At most `per_second` lines a second; the lines held back are counted."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.second = 0
        self.used = 0
        self.held_back = 0

    def take(self) -> int | None:
        """None when this line must be held back; otherwise how many were held back."""
        now = int(time.monotonic())
        if now != self.second:
            self.second, self.used = now, 0
        if self.used >= self.per_second:
            self.held_back += 1
            return None
        self.used += 1
        held_back, self.held_back = self.held_back, 0
        return held_back


_budget = _LogBudget(LOG_LINES_PER_SECOND)


def _may_have_body(scope: Scope) -> bool:
    if scope["method"] not in ("GET", "HEAD"):
        return True
    return any(name in _BODY_HEADERS for name, _ in scope["headers"])


async def _nothing() -> None:
    return None


class RequestGuard:
    def __init__(self, app: ASGIApp, body_timeout_seconds: float) -> None:
        self.app = app
        self.body_timeout = body_timeout_seconds
        self.watched: set[_GuardedRequest] = set()
        self._watchdog: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _may_have_body(scope):
            await self.app(scope, receive, send)
            return
        guarded = _GuardedRequest(scope, receive, send, time.monotonic() + self.body_timeout)
        self.watched.add(guarded)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        try:
            await self.app(scope, guarded.receive, guarded.send)
        except Exception:
            if not guarded.answered:
                raise
            # The application failed on the body it could not have (Starlette's
            # ClientDisconnect, say); the request is answered already.
        finally:
            self.watched.discard(guarded)

    async def _watch(self) -> None:
        """Cancel the body reads past their deadline. One sweep for all requests rather
        than a timer each: under uvloop a timer (`loop.call_at`, `asyncio.timeout`) costs
        4 to 6 µs per request, a set entry a tenth of one. A late body is answered within
        a quarter of the timeout (at most a second) after its deadline."""
        tick = min(1.0, self.body_timeout / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for guarded in self.watched:
                if guarded.reading is not None and now >= guarded.deadline:
                    guarded.timed_out = True
                    guarded.reading.cancel()


class _GuardedRequest:
    __slots__ = (
        "_receive",
        "_send",
        "answered",
        "body_done",
        "deadline",
        "reading",
        "scope",
        "started",
        "timed_out",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send, deadline: float) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.deadline = deadline  # time.monotonic() by which the whole body must be in
        self.body_done = False  # the last body message came
        self.started = False  # the application began its answer
        self.answered = False  # this guard answered; the application's sends are dropped
        self.reading: asyncio.Task[Any] | None = None  # the task waiting for the body
        self.timed_out = False  # the deadline passed while it waited

    def receive(self) -> Awaitable[Message]:
        if self.body_done:  # after the body, a wait for the disconnect: no deadline
            return self._receive()
        return self._read_body()

    def send(self, message: Message) -> Awaitable[None]:
        # A plain function handing on the server's awaitable: no coroutine of its own on
        # the way out of every answer.
        if self.answered:
            return _nothing()
        if message["type"] == "http.response.start":
            self.started = True
        return self._send(message)

    async def _read_body(self) -> Message:
        task = self.reading = asyncio.current_task()
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if not self.timed_out or task is None or task.uncancel():
                raise  # cancelled for another reason too (shutdown, say)
            self.body_done = True
            await self._refuse(
                408, "request_timeout", "the request body did not arrive in time", "body timeout"
            )
            return {"type": "http.disconnect"}
        except Exception as exc:
            self.body_done = True
            await self._refuse(
                400, "bad_request", "the request body could not be read", f"receive failed: {exc!r}"
            )
            return {"type": "http.disconnect"}
        finally:
            self.reading = None
        if message["type"] == "http.request":
            if not message.get("more_body", False):
                self.body_done = True
            return message
        self.body_done = True
        await self._refuse(
            400,
            "bad_request",
            "the request body is malformed or incomplete",
            "body ended early (malformed chunked encoding, or the client went away)",
        )
        return message

    async def _refuse(self, status: int, code: str, detail: str, cause: str) -> None:
        self._log(status, cause)
        if self.started:
            return  # the application's answer has begun: it stands, unfinished
        self.answered = True
        body = error_body(code, detail)
        try:
            await self._send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"%d" % len(body)),
                        (b"connection", b"close"),
                    ],
                }
            )
            await self._send({"type": "http.response.body", "body": body})
        except Exception as exc:  # the client is gone: nobody to tell
            log.debug("could not send the %d answer: %r", status, exc)

    def _log(self, status: int, cause: str) -> None:
        held_back = _budget.take()
        if held_back is None:
            return
        client = self.scope.get("client")
        log.warning(
            "%d for %s %r from %s: %s%s",
            status,
            self.scope["method"],
            self.scope["path"],
            f"{client[0]}:{client[1]}" if client else "-",
            cause,
            f" ({held_back} more such lines held back)" if held_back else "",
        )
