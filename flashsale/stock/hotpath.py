"""The reservation hot path: purchases that arrive together go to reserve.lua together.

Purchases asked for in the same event-loop tick go to Redis in one write: those of one
sale in one call of the reserve script (up to ORDERS_PER_MESSAGE), the calls of several
sales side by side. Each purchase is still decided on its own and gets its own answer."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import NoScriptError, ResponseError

from flashsale.handoff import ORDERS_PER_MESSAGE, MessageTemplate, persist_template
from flashsale.stock.calls import (
    InvalidPurchase,
    Outcome,
    Purchase,
    ReserveResult,
    parse_answers,
    reserve_call,
)
from flashsale.stock.keys import SaleKeys
from flashsale.stock.scripts import Scripts

log = logging.getLogger(__name__)

MAX_BATCHES_IN_FLIGHT = 2
BATCH_TIMEOUT = 5.0  # seconds, when the client sets no socket timeout
# Accepted order ids of one call, handed on by the caller (the 'publish' handoff).
Publish = Callable[[str, list[str]], Awaitable[None]]


def _bulk(value: Any) -> bytes:
    """One RESP bulk string; str() and encode() as redis-py's packer does them."""
    raw = value if type(value) is bytes else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One purchase's three keys and four arguments, already in RESP."""

    keys: bytes
    args: bytes

    @classmethod
    def of(cls, sale: str, purchase: Purchase) -> _Encoded:
        try:
            return cls(
                b"".join(map(_bulk, purchase.keys(SaleKeys(sale)))),
                b"".join(map(_bulk, purchase.args())),
            )
        except UnicodeEncodeError:
            raise InvalidPurchase("the purchase holds text that is not valid Unicode") from None


def _pack_call(
    sha: bytes,
    sale: str,
    encoded: Sequence[_Encoded],
    queue_key: str,
    message: MessageTemplate | None,
    deadline_ms: int,
) -> bytes:
    """EVALSHA of reserve.lua in the Redis protocol (RESP), byte for byte what redis-py
    sends for `reserve_call`, from purchases encoded one by one when they were asked."""
    fixed_keys, fixed_args = reserve_call(sale, (), queue_key, message, deadline_ms)
    count = len(encoded)
    return b"".join(
        [
            b"*%d\r\n$7\r\nEVALSHA\r\n" % (len(fixed_keys) + len(fixed_args) + 7 * count + 3),
            _bulk(sha),
            _bulk(len(fixed_keys) + 3 * count),
            *map(_bulk, fixed_keys),
            *(e.keys for e in encoded),
            *map(_bulk, fixed_args),
            *(e.args for e in encoded),
        ]
    )


@dataclass(slots=True)
class _Call:
    """Purchases of one sale that go to Redis in one script call."""

    sale: str
    encoded: list[_Encoded]
    futures: list[asyncio.Future[ReserveResult]]

    def fail(self, exc: BaseException) -> None:
        for future in self.futures:
            if not future.done():
                future.set_exception(exc)


def _answer(answered: list[tuple[_Call, list[ReserveResult]]]) -> None:
    for call, results in answered:
        for future, result in zip(call.futures, results, strict=True):
            if not future.done():  # else the request was cancelled (client went away)
                future.set_result(result)


class AsyncStock:
    """The reservation hot path.

    Purchases asked for in the same event-loop tick go to Redis together: those of one
    sale in one call of the reserve script (up to ORDERS_PER_MESSAGE), the calls of
    different sales in one write. Each purchase is still decided on its own and gets its
    own answer; the accepted ones of a call share one task message, pushed by the script
    itself (`queue`) or handed to `publish` before anyone is answered."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        queue: str = "",
        publish: Publish | None = None,
        on_call: Callable[[int], object] | None = None,
    ) -> None:
        self._client = client
        # Redis's clock minus ours, as the last answer showed it (None: not known yet).
        # Read on receipt, so it errs early: a deadline set from it falls at or before the
        # moment we stop waiting, never after.
        self._clock_offset_ms: int | None = None
        self._reserve = Scripts.register(client).reserve
        self._queue = queue
        self._publish = publish
        self._on_call = on_call  # told the number of purchases of each script call
        self._pending: list[_Call] = []
        self._open: dict[str, _Call] = {}  # the call of each sale that takes more purchases
        self._flushes: set[asyncio.Task[None]] = set()
        self._handoffs: set[asyncio.Future[None]] = set()
        self._scheduled = False

    async def reserve(
        self,
        sale: str,
        user: str,
        quantity: int,
        order_id: str,
        idempotency_key: str | None = None,
    ) -> ReserveResult:
        # Encoded now, alone: a value that cannot be sent fails its own request here, never
        # the call it would have shared with other shoppers.
        encoded = _Encoded.of(sale, Purchase(user, quantity, order_id, idempotency_key))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ReserveResult] = loop.create_future()
        call = self._open.get(sale)
        if call is None or len(call.encoded) >= ORDERS_PER_MESSAGE:
            call = self._open[sale] = _Call(sale, [], [])
            self._pending.append(call)
        call.encoded.append(encoded)
        call.futures.append(future)
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # At most MAX_BATCHES_IN_FLIGHT batches travel at once: while they do, new calls
        # gather into the next batch, so a busy process sends fewer, larger batches.
        if self._pending and not self._scheduled and len(self._flushes) < MAX_BATCHES_IN_FLIGHT:
            self._scheduled = True
            loop.call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._scheduled = False
        calls, self._pending, self._open = self._pending, [], {}
        task = asyncio.ensure_future(self._flush(calls))
        self._flushes.add(task)  # keep a reference until it is done
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        self._schedule(asyncio.get_running_loop())

    async def _flush(self, calls: list[_Call], reloaded: bool = False) -> None:
        try:
            replies = await self._send(calls)
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
            for call in calls:
                call.fail(exc)
            return
        except BaseException:
            for call in calls:
                call.fail(redis.ConnectionError("the reservation call was cancelled"))
            raise
        unloaded, answered = [], []
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, NoScriptError) and not reloaded:
                unloaded.append(call)
                continue
            try:
                if isinstance(reply, Exception):
                    raise reply
                answered.append((call, parse_answers(reply, len(call.encoded))))
                if self._on_call is not None:  # counted once it ran, not when re-sent
                    self._on_call(len(call.encoded))
            except redis.RedisError as exc:
                call.fail(exc)
        if self._publish is not None and answered:
            # Handed on apart from the batch, so that a slow broker does not hold back
            # the next reservation batches, only the answers of these purchases.
            handoff = asyncio.ensure_future(self._hand_on_then_answer(answered))
            self._handoffs.add(handoff)
            handoff.add_done_callback(self._handoffs.discard)
        else:
            _answer(answered)
        if unloaded:
            # Redis lost its script cache (restart, failover): those calls did not run.
            # Load the script once and send them again.
            try:
                await self._client.script_load(self._reserve.script)
            except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
                for call in unloaded:
                    call.fail(exc)
                return
            await self._flush(unloaded, reloaded=True)

    async def _hand_on_then_answer(self, answered: list[tuple[_Call, list[ReserveResult]]]) -> None:
        assert self._publish is not None
        handed = []
        for call, results in answered:
            fresh = [
                r.order_id
                for r in results
                if r.outcome is Outcome.ACCEPTED and not r.replayed and r.order_id is not None
            ]
            if fresh:
                handed.append(self._publish(call.sale, fresh))
        for failure in await asyncio.gather(*handed, return_exceptions=True):
            if isinstance(failure, Exception):  # they wait in the outbox for the sweep
                log.warning("could not hand accepted reservations on: %s", failure)
        _answer(answered)

    async def units(self, sale: str) -> tuple[int, int, int, int]:
        """(for sale, in flight, live, orders returned) of a sale in one MULTI/EXEC: the
        figures a sampler reads to check that no instant oversells."""
        keys = SaleKeys(sale)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.get(keys.stock)
            pipe.hmget(keys.meta, "inflight", "live")
            pipe.scard(keys.restored)
            remaining, (inflight, live), returned = await pipe.execute()
        return int(remaining or 0), int(inflight or 0), int(live or 0), int(returned)

    async def close(self) -> None:
        await self._client.aclose()

    async def sync_clock(self) -> None:
        """Learn Redis's clock before the first call, so that every call has a deadline."""
        secs, micros = await self._client.time()
        self._learn_clock(int(secs) * 1000 + int(micros) // 1000)

    def _learn_clock(self, redis_now_ms: int) -> None:
        self._clock_offset_ms = redis_now_ms - int(time.time() * 1000)

    async def _send(self, calls: list[_Call]) -> list[Any]:
        """One write of all EVALSHA commands, then their replies in order, on one pooled
        connection. Packed here rather than by redis-py's pipeline, whose generic
        per-argument encoding was the largest cost of a reservation in the profile.

        Never retried: a lost connection fails the batch (503), it cannot run twice. And
        each call carries the moment we stop waiting for it, in Redis's clock: a call that
        reaches Redis later (a frozen or slow Redis resuming) decides nothing, so a
        shopper answered 503 is never sold a unit behind their back."""
        sha = self._reserve.sha.encode()
        pool = self._client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped upstream
        try:
            timeout = conn.socket_timeout or BATCH_TIMEOUT
            deadline = 0
            if self._clock_offset_ms is not None:
                deadline = int(time.time() * 1000) + self._clock_offset_ms + int(timeout * 1000)
            packed = []
            for call in calls:
                template = persist_template(call.sale, self._queue) if self._queue else None
                packed.append(
                    _pack_call(sha, call.sale, call.encoded, self._queue, template, deadline)
                )
            # One deadline for the whole batch rather than one per reply.
            async with asyncio.timeout(timeout):
                await conn.send_packed_command(b"".join(packed), check_health=False)
                replies: list[Any] = []
                for _ in calls:
                    try:
                        replies.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as exc:  # this call's own error; the next follows
                        replies.append(exc)
            last = replies[-1]
            if isinstance(last, list) and last:
                self._learn_clock(int(last[-1]))
            return replies
        except TimeoutError:
            await conn.disconnect()
            raise redis.TimeoutError("Redis did not answer the reservation batch in time") from None
        except BaseException:
            await conn.disconnect()  # replies may still be on their way: never reuse it
            raise
        finally:
            await pool.release(conn)
