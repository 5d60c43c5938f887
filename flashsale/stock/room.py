"""A sale's waiting room in Redis (queue.lua): joining, polling, its figures, and the
draw's seed. The queue and its gate live in the sale's first segment; admissions are
copied into each shopper's home segment, where reserve.lua checks them.

The gate advances inside queue.lua from Redis's clock whenever anyone joins or polls, so
no loop has to run and no process has to survive for shoppers to be let in: a crowd that
polls is what moves it, and with no one polling no one needs letting in."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import redis

from flashsale.stock.calls import InvalidPurchase, RoomLimits, text_of
from flashsale.stock.keys import SaleKeys
from flashsale.stock.link import Link
from flashsale.stock.reads import SaleReads
from flashsale.stock.scripts import Scripts
from flashsale.stock.segments import home, segment_name, segment_names
from flashsale.stock.wire import pack

DRAW_PLACES = 2**52  # a draw place is below this; later arrivals are behind it


@dataclass(frozen=True, slots=True)
class RoomAnswer:
    """What queue.lua answered one shopper."""

    status: str  # waiting, admitted, expired, sold_out, or why not (not_open, ...)
    position: int  # 1 = next; 0 while the draw is pending or when not waiting
    ahead: int
    admitted_until_ms: int
    possible: int  # units for sale plus held by unpaid orders
    waiting: int  # shoppers in the queue
    now_ms: int
    rate_milli: int  # admitPerSecond x 1000

    @classmethod
    def parse(cls, raw: list[Any]) -> RoomAnswer:
        return cls(text_of(raw[0]), *(int(x) for x in raw[1:8]))


@dataclass(frozen=True, slots=True)
class RoomFigures:
    waiting: int
    admitted: int  # admitted and not yet bought
    admissions: int  # shoppers let in so far
    expiries: int  # admissions that ran out unused
    draw_commitment: str | None  # SHA-256 of the draw's seed (a draw only)
    draw_seed: str | None  # revealed once the sale has started


def room_keys(sale: str) -> list[str]:
    k = SaleKeys(sale)
    return [
        k.meta,
        k.stock,
        k.room_queue,
        k.room_admitted,
        k.room_joined,
        k.room_expired,
        k.room_shopped,
        k.admissions,
    ]


def draw_place(seed: str, user: str) -> int:
    """A shopper's place in the draw, as queue.lua computes it."""
    return int(hashlib.sha1(f"{seed}:{user}".encode("utf-8", "surrogatepass")).hexdigest()[:13], 16)


class RoomOps(SaleReads):
    """The waiting room's side of Stock (flashsale/stock/store.py)."""

    _scripts: Scripts[Any]

    def configure_room(self, sale: str, segments: int, room: RoomLimits | None) -> None:
        """Write the room's settings; a draw's seed is made once and never changed."""
        pipe = self._client.pipeline(transaction=False)
        for name in segment_names(sale, segments):
            pipe.hset(SaleKeys(name).meta, "room", "1" if room else "0")
        if room:
            meta = SaleKeys(sale).meta
            pipe.hset(
                meta,
                mapping={
                    "room_opens": room.opens_at_ms,
                    "room_draw": "1" if room.draw else "0",
                    "room_rate": repr(float(room.admit_per_second)),
                    "room_shop": room.shopping_seconds,
                    "room_overbook": repr(float(room.overbook)),
                },
            )
            pipe.hsetnx(meta, "room_seed", secrets.token_hex(32))
        pipe.execute()

    def join(self, sale: str, user: str) -> RoomAnswer:
        return self._queue_call("join", sale, user)

    def poll(self, sale: str, user: str) -> RoomAnswer:
        return self._queue_call("poll", sale, user)

    def _queue_call(self, op: str, sale: str, user: str) -> RoomAnswer:
        raw = self._scripts.queue(keys=room_keys(sale), args=["", "", op, user])
        return RoomAnswer.parse(raw[0])

    def room_figures(self, sale: str) -> RoomFigures | None:
        k = SaleKeys(sale)
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(
            k.meta, "room", "room_draw", "room_seed", "starts", "room_admissions", "room_expiries"
        )
        pipe.zcard(k.room_queue)
        pipe.zcard(k.room_admitted)
        pipe.time()
        (room, draw, seed, starts, admissions, expiries), waiting, admitted, now = pipe.execute()
        if room != b"1":
            return None
        started = int(now[0]) * 1000 + int(now[1]) // 1000 >= int(starts or 0)
        commitment = seed_text = None
        if draw == b"1" and seed:
            commitment = hashlib.sha256(seed).hexdigest()
            seed_text = seed.decode() if started else None
        return RoomFigures(
            int(waiting),
            int(admitted),
            int(admissions or 0),
            int(expiries or 0),
            commitment,
            seed_text,
        )

    def draw_entrants(self, sale: str) -> tuple[str | None, list[tuple[str, int]]]:
        """The draw's seed and every shopper who joined, with the place they got, in
        order."""
        k = SaleKeys(sale)
        seed: bytes | None = self._client.hget(k.meta, "room_seed")  # type: ignore[assignment]
        joined: list[tuple[bytes, float]] = self._client.zrange(  # type: ignore[assignment]
            k.room_joined, 0, -1, withscores=True
        )
        entrants = [(text_of(user), int(place)) for user, place in joined]
        return (text_of(seed) if seed else None), entrants

    def mark_paid(self, sale: str, user: str, units: int) -> None:
        """Units of a paid order never come back: the waiting room closes when no unit is
        left and none is held by an unpaid order."""
        self._client.hincrby(SaleKeys(self.segment_of(sale, user)).meta, "paid", units)


# One join or poll waiting for its call: (op, user, its answer).
_Ask = tuple[str, str, "asyncio.Future[RoomAnswer]"]


class AsyncRoom:
    """Joins and polls from the API, those of one moment in one queue.lua call per sale
    (at most CALL_SIZE each), as reservations are. One segment: that call is all. Several:
    the units of every segment are read first (one write per master), queue.lua decides
    with them, and an admitted shopper's admission is copied into their home segment."""

    CALL_SIZE = 512

    def __init__(self, link: Link, segments_of: Any) -> None:
        self._link = link
        self._segments_of = segments_of  # sale -> its number of segments, as last seen
        self._pending: dict[str, list[_Ask]] = {}

    async def join(self, sale: str, user: str) -> RoomAnswer:
        return await self._call("join", sale, user)

    async def poll(self, sale: str, user: str) -> RoomAnswer:
        return await self._call("poll", sale, user)

    async def _call(self, op: str, sale: str, user: str) -> RoomAnswer:
        try:  # alone, before it shares a call with other shoppers
            user.encode()
        except UnicodeEncodeError:
            raise InvalidPurchase("the user id is not valid Unicode") from None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RoomAnswer] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.setdefault(sale, []).append((op, user, future))
        answer = await future
        count = await self._segments_of(sale)
        index = home(user, count)
        if answer.status == "admitted" and index != 0:
            # Copied on every poll that finds the shopper admitted: a copy lost to a crash
            # is made again by the next poll, which is how the shopper learns it anyway.
            name = segment_name(sale, index, count)
            until = answer.admitted_until_ms
            await self._link.read([(name, pack("HSET", SaleKeys(name).admissions, user, until))])
        return answer

    def _flush(self) -> None:
        batch, self._pending = self._pending, {}
        for sale, items in batch.items():
            for first in range(0, len(items), self.CALL_SIZE):
                self._link.background(self._send(sale, items[first : first + self.CALL_SIZE]))

    async def _send(
        self, sale: str, items: list[tuple[str, str, asyncio.Future[RoomAnswer]]]
    ) -> None:
        try:
            count = await self._segments_of(sale)
            remaining = unpaid = ""
            if count > 1:
                remaining, unpaid = await self._units(sale, count)
            args = [remaining, unpaid, *(part for op, user, _ in items for part in (op, user))]
            raw = await self._link.script_call("queue", sale, room_keys(sale), args)
            answers = [RoomAnswer.parse(one) for one in raw]
        except Exception as exc:  # noqa: BLE001 - every waiting shopper gets the error
            for _, _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), answer in zip(items, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    async def _units(self, sale: str, count: int) -> tuple[str, str]:
        """Units for sale, and held by unpaid orders, over every segment."""
        reads = []
        for name in segment_names(sale, count):
            reads.append((name, pack("GET", SaleKeys(name).stock)))
            reads.append((name, pack("HMGET", SaleKeys(name).meta, "inflight", "live", "paid")))
        replies = await self._link.read(reads)
        remaining = sum(int(r or 0) for r in replies[0::2])
        held = sum(int(i or 0) + int(v or 0) - int(p or 0) for i, v, p in replies[1::2])
        return str(remaining), str(max(0, held))

    async def bought(self, sale: str, user: str) -> None:
        """A shopper homed outside the first segment bought: out of the room's budget."""
        try:
            k = SaleKeys(sale)
            await self._link.script_call("bought", sale, [k.room_admitted, k.room_shopped], [user])
        except redis.RedisError:
            pass  # the admission runs out on its own, and frees its budget then
