"""The reservation hot path: purchases that arrive together go to reserve.lua together.

Purchases asked for in the same event-loop tick go to Redis in one write per server: those
of one sale segment in one call of the reserve script (up to ORDERS_PER_MESSAGE), the
calls of several segments side by side. Each purchase is still decided on its own and
gets its own answer.

A sale spread over segments (flashsale/stock/segments.py) decides each purchase in the
shopper's home segment. When that segment lacks the units, the purchase borrows them from
another segment (lend.lua) and is decided again with the loan, which the home segment
credits first; `sold_out` is answered only when no segment had the units when read."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from flashsale.handoff import ORDERS_PER_MESSAGE, persist_template
from flashsale.stock.borrowing import Borrowing
from flashsale.stock.calls import (
    Loan,
    Outcome,
    Purchase,
    ReserveResult,
    SegmentState,
    parse_answers,
)
from flashsale.stock.keys import SaleKeys
from flashsale.stock.link import REFUSED, Link, Unavailable
from flashsale.stock.reads import loans_of
from flashsale.stock.room import AsyncRoom
from flashsale.stock.scripts import Scripts
from flashsale.stock.segments import home, sale_of, segment_name, segment_names, split
from flashsale.stock.wire import AnyRedis, Encoded, Route, pack_call

log = logging.getLogger(__name__)

MAX_BATCHES_IN_FLIGHT = 2
# A call a cluster node refused (it did not run) goes again this often at most.
MAX_RESENDS = 4
# Answers of reserve.lua that credited no loan (it stopped before crediting): their
# loans are left for the sweep, which credits and settles them.
UNCREDITED = frozenset({Outcome.LATE, Outcome.UNKNOWN_SALE, Outcome.MOVING})
# Rounds of borrowing for one purchase, while other shoppers take the units it borrowed.
BORROW_ROUNDS = 4
# Loans tried from what earlier answers showed before reading every segment afresh.
CACHED_TRIES = 2
# Accepted order ids of one call, handed on by the caller (the 'publish' handoff).
Publish = Callable[[str, list[str]], Awaitable[None]]

__all__ = ["AsyncStock", "Publish", "Unavailable"]


@dataclass(slots=True)
class _Call:
    """Purchases of one segment that go to Redis in one script call."""

    segment: str
    encoded: list[Encoded] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    futures: list[asyncio.Future[ReserveResult]] = field(default_factory=list)
    loans: list[Loan] = field(default_factory=list)
    route: Route = Route()

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
    segment in one call of the reserve script (up to ORDERS_PER_MESSAGE), the calls of
    different segments in one write per server. Each purchase is still decided on its own
    and gets its own answer; the accepted ones of a call share one task message, pushed
    by the script itself (`queue`) or handed to `publish` before anyone is answered."""

    def __init__(
        self,
        client: AnyRedis,
        queue: str = "",
        publish: Publish | None = None,
        on_call: Callable[[int], object] | None = None,
    ) -> None:
        self._scripts: Scripts[Any] = Scripts.register(client)
        self._link = Link(client, self._scripts)
        self._queue = queue
        self._publish = publish
        self._on_call = on_call  # told the number of purchases of each script call
        self._segments: dict[str, int] = {}  # sale -> its number of segments, as answered
        self._pending: list[_Call] = []
        self._open: dict[str, _Call] = {}  # the call of each segment that takes more
        self._flushes = 0
        self._scheduled = False
        self._answered_at = 0.0  # when the last reserve answers arrived
        self._borrowing = Borrowing(self._link)
        self.room = AsyncRoom(self._link, self._count_of)

    async def reserve(
        self,
        sale: str,
        user: str,
        quantity: int,
        order_id: str,
        idempotency_key: str | None = None,
    ) -> ReserveResult:
        purchase = Purchase(user, quantity, order_id, idempotency_key)
        for _ in range(MAX_RESENDS):
            count = self._segments.get(sale, 1)
            index = home(user, count)
            result = await self._decide(segment_name(sale, index, count), purchase)
            if result.outcome is not Outcome.MOVED:  # else the answer taught the count
                break
        else:
            raise Unavailable(f"the segments of sale {sale} are changing")
        if result.outcome is Outcome.MOVING:
            raise Unavailable(f"sale {sale} is being respread")
        if result.outcome is Outcome.SHORT:
            return await self._borrow_then_decide(sale, index, purchase)
        return result

    def _decide(
        self, segment: str, purchase: Purchase, loans: list[Loan] | None = None
    ) -> asyncio.Future[ReserveResult]:
        # Encoded now, alone: a value that cannot be sent fails its own request here, never
        # the call it would have shared with other shoppers.
        encoded = Encoded.of(segment, purchase)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ReserveResult] = loop.create_future()
        call = self._open.get(segment)
        if call is None or len(call.encoded) >= ORDERS_PER_MESSAGE:
            call = self._open[segment] = _Call(segment)
            self._pending.append(call)
        call.encoded.append(encoded)
        call.users.append(purchase.user)
        call.futures.append(future)
        call.loans.extend(loans or ())
        self._schedule(loop)
        return future

    # Borrowing --------------------------------------------------------------------------

    async def _borrow_then_decide(self, sale: str, index: int, purchase: Purchase) -> ReserveResult:
        count = self._segments.get(sale, 1)
        for _ in range(BORROW_ROUNDS):
            loans, home_level = await self._borrowing.borrow(
                sale, count, index, purchase.quantity, self._answered_at
            )
            if not loans and home_level < purchase.quantity:
                return ReserveResult(Outcome.SOLD_OUT)
            result = await self._decide(segment_name(sale, index, count), purchase, loans)
            if loans and result.outcome not in UNCREDITED:
                self._borrowing.settle_soon(loans)  # credited: the loans are done
            if result.outcome in (Outcome.MOVED, Outcome.MOVING):
                raise Unavailable(f"the segments of sale {sale} are changing")
            if result.outcome is not Outcome.SHORT:
                return result
        # Other shoppers keep taking the units this purchase borrows: there are units, so
        # not sold out, but none could be had just now.
        raise Unavailable(f"units of sale {sale} are moving between segments")

    # Batching ---------------------------------------------------------------------------

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # At most MAX_BATCHES_IN_FLIGHT batches travel at once: while they do, new calls
        # gather into the next batch, so a busy process sends fewer, larger batches.
        if self._pending and not self._scheduled and self._flushes < MAX_BATCHES_IN_FLIGHT:
            self._scheduled = True
            loop.call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._scheduled = False
        calls, self._pending, self._open = self._pending, [], {}
        self._flushes += 1
        task = asyncio.ensure_future(self._flush(calls))
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes -= 1
        self._schedule(asyncio.get_running_loop())

    async def _flush(self, calls: list[_Call], attempt: int = 0) -> None:
        try:
            replies = await self._link.send(calls, self._pack)
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
            for call in calls:
                call.fail(exc)
            return
        except BaseException:
            for call in calls:
                call.fail(redis.ConnectionError("the reservation call was cancelled"))
            raise
        self._answered_at = time.monotonic()
        again: list[_Call] = []
        answered: list[tuple[_Call, list[ReserveResult]]] = []
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, REFUSED):
                # The call did not run (a script cache lost in a restart or failover, a
                # slot served elsewhere or moving): it may go again, to the same segment
                # with the same order ids.
                log.debug("reservation call for %s refused: %r", call.segment, reply)
                call.route = await self._link.follow(reply)
                again.append(call)
                continue
            try:
                if isinstance(reply, Exception):
                    raise reply
                results, state = parse_answers(reply, len(call.encoded))
                self._learn_state(call.segment, state)
                if state.room and split(call.segment)[1] != 0:
                    self._left_the_room(call, results)
                answered.append((call, results))
                if self._on_call is not None:  # counted once it ran, not when re-sent
                    self._on_call(len(call.encoded))
            except redis.RedisError as exc:
                call.fail(exc)
        if self._publish is not None and answered:
            # Handed on apart from the batch, so that a slow broker does not hold back
            # the next reservation batches, only the answers of these purchases.
            self._link.background(self._hand_on_then_answer(answered))
        else:
            _answer(answered)
        if again:
            await self._send_again(again, attempt)

    async def _send_again(self, calls: list[_Call], attempt: int) -> None:
        if attempt + 1 >= MAX_RESENDS:
            for call in calls:
                call.fail(Unavailable("Redis kept refusing the reservation call"))
            return
        try:
            await self._link.load("reserve")
            if attempt:  # a slot still moving or a cluster electing a master: wait a little
                await asyncio.sleep(0.05 * 2**attempt)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
            for call in calls:
                call.fail(exc)
            return
        await self._flush(calls, attempt + 1)

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
                handed.append(self._publish(call.segment, fresh))
        for failure in await asyncio.gather(*handed, return_exceptions=True):
            if isinstance(failure, Exception):  # they wait in the outbox for the sweep
                log.warning("could not hand accepted reservations on: %s", failure)
        _answer(answered)

    def _pack(self, call: _Call, deadline_ms: int) -> bytes:
        template = persist_template(call.segment, self._queue) if self._queue else None
        return pack_call(
            self._scripts.reserve.sha.encode(),
            call.segment,
            call.encoded,
            self._queue,
            template,
            deadline_ms,
            call.loans,
        )

    def _left_the_room(self, call: _Call, results: list[ReserveResult]) -> None:
        """Shoppers homed outside the first segment who bought leave the waiting room's
        budget there (reserve.lua does it itself in the first segment)."""
        sale = sale_of(call.segment)
        for user, result in zip(call.users, results, strict=True):
            if result.outcome is Outcome.ACCEPTED and not result.replayed:
                self._link.background(self.room.bought(sale, user))

    def _learn_state(self, segment: str, state: SegmentState) -> None:
        self._borrowing.levels[segment] = state.remaining
        self._segments[sale_of(segment)] = state.segments

    async def sync_clock(self) -> None:
        """Before the first purchase: the cluster's slots and every server's clock."""
        await self._link.start()

    async def units(self, sale: str) -> tuple[int, int, int, int]:
        """(for sale, in flight, live, orders returned) of a sale, each segment's read in
        one MULTI/EXEC: the figures a sampler reads to check that no instant oversells.
        Units lent between segments count as for sale until their borrower credits them."""
        count = self._segments.get(sale) or await self._count(sale)
        totals = [0, 0, 0, 0]
        travelling: list[tuple[str, str, int]] = []
        for name in segment_names(sale, count):
            keys = SaleKeys(name)
            async with self._link.client.pipeline(transaction=True) as pipe:
                pipe.get(keys.stock)
                pipe.hmget(keys.meta, "inflight", "live")
                pipe.scard(keys.restored)
                pipe.hgetall(keys.loans)
                remaining, (inflight, live), returned, loans = await pipe.execute()
            travelling += loans_of(loans)
            for i, figure in enumerate((remaining, inflight, live, returned)):
                totals[i] += int(figure or 0)
        if travelling:
            pipe = self._link.client.pipeline(transaction=False)
            for borrower, loan_id, _ in travelling:
                pipe.zscore(SaleKeys(borrower).received, loan_id)
            receipts = await pipe.execute()
            totals[0] += sum(
                u for (_, _, u), r in zip(travelling, receipts, strict=True) if r is None
            )
        return totals[0], totals[1], totals[2], totals[3]

    async def _count_of(self, sale: str) -> int:
        return self._segments.get(sale) or await self._count(sale)

    async def _count(self, sale: str) -> int:
        count = int(await self._link.client.hget(SaleKeys(sale).meta, "segments") or 1)
        self._segments[sale] = count
        return count

    async def close(self) -> None:
        await self._link.close()
