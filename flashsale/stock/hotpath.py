"""Stock in Redis: the Lua scripts, loaded once and called through redis-py's Script
objects (which re-send the source after NOSCRIPT, e.g. when Redis restarted)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import NoScriptError, ResponseError

from flashsale.keys import SaleKeys
from flashsale.worker.message import ORDERS_PER_MESSAGE, MessageTemplate, persist_template

log = logging.getLogger(__name__)


@cache
def lua_source(name: str) -> str:
    return resources.files("flashsale").joinpath("lua", f"{name}.lua").read_text()


class Outcome(StrEnum):
    """What the reserve script decided; each maps to one HTTP answer."""

    ACCEPTED = "accepted"
    UNKNOWN_SALE = "unknown_sale"
    ENDED = "ended"
    PAUSED = "paused"
    NOT_STARTED = "not_started"
    RATE_LIMITED = "rate_limited"
    LIMIT_REACHED = "limit_reached"
    SOLD_OUT = "sold_out"
    KEY_REUSED = "key_reused"  # the Idempotency-Key was first used for another request
    LATE = "late"  # reached Redis after the caller's deadline: nothing was decided


@dataclass(frozen=True, slots=True)
class ReserveResult:
    outcome: Outcome
    order_id: str | None = None
    expires_at_ms: int = 0
    quantity: int = 0
    replayed: bool = False
    retry_after_ms: int = 0

    @classmethod
    def parse(cls, raw: list[Any]) -> ReserveResult:
        code = _text(raw[0])
        if code == "ok":
            return cls(
                Outcome.ACCEPTED,
                order_id=_text(raw[1]),
                expires_at_ms=int(raw[2]),
                quantity=int(raw[3]),
                replayed=_text(raw[4]) == "1",
            )
        if code == "rate_limited":
            return cls(Outcome.RATE_LIMITED, retry_after_ms=int(raw[1]))
        if code == "key_reused":
            return cls(Outcome.KEY_REUSED, order_id=_text(raw[1]))
        return cls(Outcome(code))


@dataclass(frozen=True, slots=True)
class SaleLimits:
    """The part of a sale's spec that the reserve script enforces."""

    total: int
    sku: str
    starts_at_ms: int
    ends_at_ms: int
    paused: bool
    per_user_limit: int
    rate_per_second: float
    burst: int
    payment_timeout_seconds: int


class StockLoadError(ValueError):
    """The new total would take away units that are already sold."""


@dataclass(frozen=True, slots=True)
class SoldInSql:
    """What SQL knows is sold, for rebuilding a sale that Redis does not have."""

    live_units: int = 0
    held: tuple[tuple[str, int], ...] = ()  # (user, units in live orders)
    unreturned_expired: tuple[str, ...] = ()  # expired order ids not yet returned


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Purchase:
    """One request to buy, as the reserve script takes it."""

    user: str
    quantity: int
    order_id: str
    idempotency_key: str | None = None

    def keys(self, k: SaleKeys) -> tuple[str, str, str]:
        return (
            k.rate(self.user),
            k.idempotency(self.user, self.idempotency_key),
            k.reservation(self.order_id),
        )

    def args(self) -> tuple[str, int, str, str]:
        return self.user, self.quantity, self.order_id, "1" if self.idempotency_key else "0"


class InvalidPurchase(ValueError):
    """A purchase whose values cannot be sent to Redis (text that is not valid Unicode);
    refused on its own, before it joins other shoppers' purchases in a call."""


def reserve_call(
    sale: str,
    purchases: Sequence[Purchase],
    queue_key: str = "",
    message: MessageTemplate | None = None,
    deadline_ms: int = 0,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of reserve.lua for purchases of one sale. With no queue, KEYS[5]
    names a key of the sale itself (never written), keeping the call in one slot."""
    k = SaleKeys(sale)
    keys = [k.meta, k.stock, k.held, k.outbox, queue_key or k.meta]
    args: list[Any] = [message.head, message.tail] if queue_key and message else [b"", b""]
    args.append(deadline_ms)
    for p in purchases:
        keys += p.keys(k)
        args += p.args()
    return keys, args


def parse_answers(raw: Any, count: int) -> list[ReserveResult]:
    """The answers of a reserve.lua call, without the Redis clock that ends them."""
    if not isinstance(raw, list) or len(raw) != count + 1:
        raise redis.ResponseError(f"reserve.lua answered {raw!r} to {count} purchases")
    return [ReserveResult.parse(answer) for answer in raw[:count]]


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
        self.client = client
        # Redis's clock minus ours, as the last answer showed it (None: not known yet).
        # Read on receipt, so it errs early: a deadline set from it falls at or before the
        # moment we stop waiting, never after.
        self._clock_offset_ms: int | None = None
        self._reserve = client.register_script(lua_source("reserve"))
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
                await self.client.script_load(self._reserve.script)
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

    async def sync_clock(self) -> None:
        """Learn Redis's clock before the first call, so that every call has a deadline."""
        secs, micros = await self.client.time()
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
        pool = self.client.connection_pool
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


class Stock:
    """Everything else that changes stock, for workers, the reaper and the loader."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._reserve = client.register_script(lua_source("reserve"))
        self._load = client.register_script(lua_source("load"))
        self._ack = client.register_script(lua_source("ack"))
        self._restore = client.register_script(lua_source("restore"))
        self._release = client.register_script(lua_source("release"))

    def reserve(
        self,
        sale: str,
        user: str,
        quantity: int,
        order_id: str,
        idempotency_key: str | None = None,
        queue: str = "",
        message: MessageTemplate | None = None,
    ) -> ReserveResult:
        """One purchase; with a queue, the script pushes its task message there."""
        purchase = Purchase(user, quantity, order_id, idempotency_key)
        return self.reserve_many(sale, [purchase], queue, message)[0]

    def reserve_many(
        self,
        sale: str,
        purchases: Sequence[Purchase],
        queue: str = "",
        message: MessageTemplate | None = None,
    ) -> list[ReserveResult]:
        """Purchases of one sale in one script call, as the API makes them; the accepted
        ones share one task message (`message`, or a new one) when a queue is given."""
        if queue and message is None:
            message = persist_template(sale, queue)
        keys, args = reserve_call(sale, purchases, queue, message)
        return parse_answers(self._reserve(keys=keys, args=args), len(purchases))

    def load(self, sale: str, limits: SaleLimits, sold: SoldInSql = SoldInSql()) -> int:
        """Create or update the sale; returns the units still for sale. `sold` counts
        only when Redis has no such sale yet."""
        k = SaleKeys(sale)
        raw = self._load(
            keys=[k.meta, k.stock, k.held, k.restored],
            args=[
                limits.total,
                limits.sku,
                limits.starts_at_ms,
                limits.ends_at_ms,
                "1" if limits.paused else "0",
                limits.per_user_limit,
                repr(float(limits.rate_per_second)),
                limits.burst,
                limits.payment_timeout_seconds,
                sold.live_units,
                len(sold.held),
                *(part for pair in sold.held for part in pair),
                *sold.unreturned_expired,
            ],
        )
        if _text(raw[0]) == "below_sold":
            raise StockLoadError(
                f"sale {sale!r}: stock cannot drop to {limits.total}: "
                f"{int(raw[1]) - int(raw[2])} units are already taken"
            )
        return int(raw[2])

    def ack(self, sale: str, order_id: str, rejected: bool = False) -> bool:
        return self.ack_many(sale, {order_id: rejected}) == 1

    def ack_many(self, sale: str, rejected: Mapping[str, bool]) -> int:
        """Take persisted reservations off the outbox (`rejected[id]`: SQL refused it);
        returns how many this call acknowledged."""
        if not rejected:
            return 0
        k = SaleKeys(sale)
        args: list[str] = []
        for order_id, refused in rejected.items():
            args += [order_id, "rejected" if refused else "persisted"]
        keys = [k.meta, k.outbox, k.held, *(k.reservation(order_id) for order_id in rejected)]
        return int(self._ack(keys=keys, args=args))

    def restore(self, sale: str, order_id: str, user: str, quantity: int) -> int:
        """1: units returned now; 0: returned before; -1: the sale is gone from Redis."""
        k = SaleKeys(sale)
        return int(
            self._restore(
                keys=[k.meta, k.stock, k.held, k.restored, k.reservation(order_id)],
                args=[order_id, user, quantity],
            )
        )

    def release(self, sale: str, order_id: str) -> int:
        """A reservation that can never be stored gives its units back; returns how many
        (0 when it was stored or released before)."""
        k = SaleKeys(sale)
        return int(
            self._release(
                keys=[k.meta, k.stock, k.held, k.outbox, k.reservation(order_id)],
                args=[order_id],
            )
        )
