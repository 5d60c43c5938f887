"""Stock in Redis: the Lua scripts, loaded once and called through redis-py's Script
objects (which re-send the source after NOSCRIPT, e.g. when Redis restarted)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import NoScriptError, ResponseError

from flashsale.keys import SaleKeys


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


def reserve_call(
    sale: str,
    user: str,
    quantity: int,
    order_id: str,
    idempotency_key: str | None,
    queue_key: str,
    message: bytes | str,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of reserve.lua, shared by the sync and async clients. With no queue,
    KEYS[8] names a key of the sale itself (never written), keeping the call in one slot."""
    k = SaleKeys(sale)
    keys = [
        k.meta,
        k.stock,
        k.held,
        k.rate(user),
        k.idempotency(user, idempotency_key),
        k.outbox,
        k.reservation(order_id),
        queue_key or k.meta,
    ]
    return keys, [user, quantity, order_id, message, "1" if idempotency_key else "0"]


MAX_BATCHES_IN_FLIGHT = 2
BATCH_TIMEOUT = 5.0  # seconds, when the client sets no socket timeout


def _pack_evalsha(sha: bytes, keys: list[str], args: list[Any]) -> bytes:
    """EVALSHA sha numkeys keys... args... in the Redis protocol (RESP)."""
    out = [b"*%d\r\n$7\r\nEVALSHA\r\n$%d\r\n%s\r\n" % (len(keys) + len(args) + 3, len(sha), sha)]
    for value in (len(keys), *keys, *args):
        raw = value if type(value) is bytes else str(value).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def _fail(batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]], exc: Exception) -> None:
    for *_, future in batch:
        if not future.done():
            future.set_exception(exc)


class AsyncStock:
    """The reservation hot path: one EVALSHA per purchase.

    Calls made in the same event-loop tick go to Redis together, in one pipeline (one
    write, one read), which costs this process far less CPU than one round trip each.
    Every call still runs the script on its own and gets its own answer back."""

    def __init__(self, client: redis.asyncio.Redis, batch: bool = True) -> None:
        self.client = client
        self._reserve = client.register_script(lua_source("reserve"))
        self._batch = batch
        self._pending: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def reserve(
        self,
        sale: str,
        user: str,
        quantity: int,
        order_id: str,
        idempotency_key: str | None = None,
        queue_key: str = "",
        message: bytes | str = "",
    ) -> ReserveResult:
        keys, args = reserve_call(
            sale, user, quantity, order_id, idempotency_key, queue_key, message
        )
        if not self._batch:
            return ReserveResult.parse(await self._reserve(keys=keys, args=args))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((keys, args, future))
        self._schedule(loop)
        return ReserveResult.parse(await future)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # At most MAX_BATCHES_IN_FLIGHT batches travel at once: while they do, new calls
        # gather into the next batch, so a busy process sends fewer, larger batches.
        if self._pending and not self._scheduled and len(self._flushes) < MAX_BATCHES_IN_FLIGHT:
            self._scheduled = True
            loop.call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)  # keep a reference until it is done
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        self._schedule(asyncio.get_running_loop())

    async def _flush(
        self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]], reloaded: bool = False
    ) -> None:
        try:
            replies = await self._send_batch(batch)
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
            _fail(batch, exc)
            return
        except BaseException:
            _fail(batch, redis.ConnectionError("the reservation call was cancelled"))
            raise
        unloaded = []
        for item, reply in zip(batch, replies, strict=True):
            future = item[2]
            if future.done():  # the request was cancelled (client went away)
                continue
            if isinstance(reply, NoScriptError) and not reloaded:
                unloaded.append(item)
            elif isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        if unloaded:
            # Redis lost its script cache (restart, failover): those calls did not run.
            # Load the script once and send them again.
            try:
                await self.client.script_load(self._reserve.script)
            except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
                _fail(unloaded, exc)
                return
            await self._flush(unloaded, reloaded=True)

    async def _send_batch(
        self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]]
    ) -> list[Any]:
        """One write of all EVALSHA commands, then their replies in order, on one pooled
        connection. Packed here rather than by redis-py's pipeline, whose generic
        per-argument encoding was the largest cost of a reservation in the profile.
        Never retried: a lost connection fails the batch (503), it cannot run twice."""
        sha = self._reserve.sha.encode()
        packed = b"".join(_pack_evalsha(sha, keys, args) for keys, args, _ in batch)
        pool = self.client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped upstream
        try:
            # One deadline for the whole batch rather than one per reply.
            async with asyncio.timeout(conn.socket_timeout or BATCH_TIMEOUT):
                await conn.send_packed_command(packed, check_health=False)
                replies: list[Any] = []
                for _ in batch:
                    try:
                        replies.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as exc:  # this call's own error; the next follows
                        replies.append(exc)
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

    def reserve(
        self,
        sale: str,
        user: str,
        quantity: int,
        order_id: str,
        idempotency_key: str | None = None,
        queue_key: str = "",
        message: bytes | str = "",
    ) -> ReserveResult:
        keys, args = reserve_call(
            sale, user, quantity, order_id, idempotency_key, queue_key, message
        )
        return ReserveResult.parse(self._reserve(keys=keys, args=args))

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
        k = SaleKeys(sale)
        done = self._ack(
            keys=[k.meta, k.outbox, k.reservation(order_id), k.held],
            args=[order_id, "rejected" if rejected else "persisted"],
        )
        return bool(int(done))

    def restore(self, sale: str, order_id: str, user: str, quantity: int) -> int:
        """1: units returned now; 0: returned before; -1: the sale is gone from Redis."""
        k = SaleKeys(sale)
        return int(
            self._restore(
                keys=[k.meta, k.stock, k.held, k.restored, k.reservation(order_id)],
                args=[order_id, user, quantity],
            )
        )
