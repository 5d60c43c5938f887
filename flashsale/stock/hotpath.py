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
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)

from flashsale.handoff import ORDERS_PER_MESSAGE, persist_template
from flashsale.stock.calls import (
    Loan,
    Outcome,
    Purchase,
    ReserveResult,
    SegmentState,
    parse_answers,
)
from flashsale.stock.keys import SaleKeys
from flashsale.stock.reads import loans_of
from flashsale.stock.scripts import Scripts
from flashsale.stock.segments import home, sale_of, segment_name, segment_names
from flashsale.stock.wire import (
    AnyRedis,
    Encoded,
    Route,
    node_of,
    pack,
    pack_call,
    send_by_segment,
    send_single,
    send_to_node,
    timeout_of,
)

log = logging.getLogger(__name__)

MAX_BATCHES_IN_FLIGHT = 2
# A call a cluster node refused (it did not run) goes again this often at most.
MAX_RESENDS = 4
# Rounds of borrowing for one purchase, while other shoppers take the units it borrowed.
BORROW_ROUNDS = 4
# Loans tried from what earlier answers showed before reading every segment afresh.
CACHED_TRIES = 2
# Loans, their settling and reads of the levels, in flight at once (each one connection).
MAX_SIDE_CALLS = 16
REFRESH_EVERY = 1.0  # seconds between slot-map refreshes after a failed node
# Accepted order ids of one call, handed on by the caller (the 'publish' handoff).
Publish = Callable[[str, list[str]], Awaitable[None]]
# Errors meaning a cluster node did not run the call: it may go again.
_REFUSED = (AskError, TryAgainError, ClusterDownError, NoScriptError)


class Unavailable(redis.ConnectionError):
    """The purchase could not be decided now (answered 503 with Retry-After)."""


@dataclass(slots=True)
class _Call:
    """Purchases of one segment that go to Redis in one script call."""

    segment: str
    encoded: list[Encoded] = field(default_factory=list)
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
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        # Redis's clock minus ours, per server, as its last answer showed it. Read on
        # receipt, so it errs early: a deadline set from it falls at or before the moment
        # we stop waiting, never after.
        self._clock_offset_ms: dict[str, int] = {}
        self._scripts: Scripts[Any] = Scripts.register(client)
        self._queue = queue
        self._publish = publish
        self._on_call = on_call  # told the number of purchases of each script call
        self._segments: dict[str, int] = {}  # sale -> its number of segments, as answered
        self._levels: dict[str, int] = {}  # segment -> units left, as last answered
        self._pending: list[_Call] = []
        self._open: dict[str, _Call] = {}  # the call of each segment that takes more
        self._tasks: set[asyncio.Future[Any]] = set()
        self._flushes = 0
        self._scheduled = False
        self._refreshed_at = 0.0
        self._answered_at = 0.0  # when the last reserve answers arrived
        self._ready = not self._cluster  # a cluster client has read the slot map
        # sale -> (when it started, the read of every segment's units): a crowd short of
        # units at the same moment shares one read.
        self._reads: dict[str, tuple[float, asyncio.Future[dict[int, int]]]] = {}
        self._side_calls = asyncio.Semaphore(MAX_SIDE_CALLS)
        self._to_settle: dict[str, list[str]] = {}  # lender segment -> credited loan ids

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
            index = home(user, self._segments.get(sale, 1))
            result = await self._decide(segment_name(sale, index), purchase)
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
        call.futures.append(future)
        call.loans.extend(loans or ())
        self._schedule(loop)
        return future

    # Borrowing --------------------------------------------------------------------------

    async def _borrow_then_decide(self, sale: str, index: int, purchase: Purchase) -> ReserveResult:
        count = self._segments.get(sale, 1)
        for _ in range(BORROW_ROUNDS):
            loans, home_level = await self._borrow(sale, count, index, purchase.quantity)
            if not loans and home_level < purchase.quantity:
                return ReserveResult(Outcome.SOLD_OUT)
            result = await self._decide(segment_name(sale, index), purchase, loans)
            if loans and result.outcome not in (Outcome.LATE, Outcome.UNKNOWN_SALE):
                self._settle_soon(loans)  # credited: the loans are done
            if result.outcome in (Outcome.MOVED, Outcome.MOVING):
                raise Unavailable(f"the segments of sale {sale} are changing")
            if result.outcome is not Outcome.SHORT:
                return result
        # Other shoppers keep taking the units this purchase borrows: there are units, so
        # not sold out, but none could be had just now.
        raise Unavailable(f"units of sale {sale} are moving between segments")

    async def _borrow(self, sale: str, count: int, index: int, need: int) -> tuple[list[Loan], int]:
        """Loans covering `need` units for segment `index`, richest segments first, as far
        as units are found; and the home segment's units when they were read afresh."""
        names = segment_names(sale, count)
        since = self._answered_at  # at or after the home segment found itself short
        tried, fresh, home_level = {index}, False, 0
        loans: list[Loan] = []
        cached_tries = 0
        while need > 0:
            # What every answer, loan and read of this process showed last, shared by all
            # its borrowers: one that finds a segment empty spares the others the call.
            levels = [self._levels.get(name, 0) for name in names]
            candidates = sorted(
                (k for k in range(count) if k not in tried and levels[k] > 0),
                key=lambda k: -levels[k],
            )
            if not candidates or (not fresh and cached_tries >= CACHED_TRIES):
                if fresh:
                    break
                home_level = (await self._read_levels(sale, names, since))[index]
                fresh, tried = True, {index}
                if home_level >= need and not loans:
                    break  # units came back home meanwhile: decide again there
                continue
            lender = candidates[0]
            tried.add(lender)
            cached_tries += 0 if fresh else 1
            loan = await self._lend(sale, lender, index, need)
            if loan is not None:
                loans.append(loan)
                need -= loan.units
        return loans, home_level

    async def _read_levels(self, sale: str, names: list[str], since: float) -> dict[int, int]:
        """Units for sale in every segment, read after `since`: a read started since then
        is shared, else a new one starts."""
        shared = self._reads.get(sale)
        if shared is None or shared[0] < since:
            shared = self._reads[sale] = (
                time.monotonic(),
                asyncio.ensure_future(self._read(names)),
            )
        return dict(await asyncio.shield(shared[1]))

    async def _read(self, names: list[str]) -> dict[int, int]:
        """Units for sale in every segment, one write per master; none while the sale is
        respread (its units are counted afresh then, and none may be called sold out)."""
        reads = [(names[0], pack("HGET", SaleKeys(names[0]).meta, "moving"))]
        reads += [(name, pack("GET", SaleKeys(name).stock)) for name in names]
        async with self._side_calls:
            replies = await send_by_segment(self._client, reads)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        moving, levels = replies[0], replies[1:]
        if moving == b"1":
            raise Unavailable(f"sale {sale_of(names[0])} is being respread")
        for name, left in zip(names, levels, strict=True):
            self._levels[name] = int(left or 0)
        return {k: int(left or 0) for k, left in enumerate(levels)}

    async def _lend(self, sale: str, lender: int, borrower: int, units: int) -> Loan | None:
        name = segment_name(sale, lender)
        k = SaleKeys(name)
        loan_id = uuid.uuid4().hex
        deadline = self._deadline(self._node_name(name))
        lent, left, now, epoch = await self._script_call(
            "lend", name, [k.meta, k.stock, k.loans], [loan_id, borrower, units, deadline]
        )
        if int(lent) < 0:
            raise Unavailable(f"sale {sale} is being respread")
        self._learn_clock(self._node_name(name), int(now))
        self._levels[name] = int(left)
        return Loan(loan_id, name, int(lent), int(epoch)) if int(lent) else None

    def _settle_soon(self, loans: list[Loan]) -> None:
        """Settle credited loans in the background, those of one moment together."""
        start = not self._to_settle
        for loan in loans:
            self._to_settle.setdefault(loan.lender, []).append(loan.loan_id)
        if start:
            self._background(self._settle())

    async def _settle(self) -> None:
        await asyncio.sleep(0)  # gather the loans of this moment
        batch, self._to_settle = self._to_settle, {}
        try:
            for lender, ids in batch.items():
                await self._script_call("settle", lender, [SaleKeys(lender).loans], ids)
        except redis.RedisError as exc:  # the sweep settles what is left
            log.info("loans left for the sweep to settle: %r", exc)

    async def _script_call(self, name: str, segment: str, keys: list[str], args: list[Any]) -> Any:
        """One call of a script beside the reserve calls, on the raw wire as they are, at
        most MAX_SIDE_CALLS at once; sent again only when the server refused it (it did
        not run): after loading the script, or learning the slot's new master."""
        script = getattr(self._scripts, name)
        packed = pack("EVALSHA", script.sha, len(keys), *keys, *args)
        for attempt in range(2):
            async with self._side_calls:
                (reply,) = await send_by_segment(self._client, [(segment, packed)])
            if isinstance(reply, NoScriptError) and not attempt:
                await self._client.script_load(script.script)
            elif (
                isinstance(reply, MovedError)
                and not attempt
                and isinstance(self._client, RedisCluster)
            ):
                await self._client.nodes_manager.move_slot(reply)
            elif isinstance(reply, Exception):
                raise reply
            else:
                return reply
        raise Unavailable(f"Redis kept refusing {name}.lua")

    def _background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

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
        self._tasks.add(task)
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._flushes -= 1
        self._schedule(asyncio.get_running_loop())

    async def _flush(self, calls: list[_Call], attempt: int = 0) -> None:
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
        self._answered_at = time.monotonic()
        again: list[_Call] = []
        answered: list[tuple[_Call, list[ReserveResult]]] = []
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, _REFUSED):
                # The call did not run (a script cache lost in a restart or failover, a
                # slot served elsewhere or moving): it may go again, to the same segment
                # with the same order ids.
                await self._follow(call, reply)
                again.append(call)
                continue
            try:
                if isinstance(reply, Exception):
                    raise reply
                results, state = parse_answers(reply, len(call.encoded))
                self._learn_state(call.segment, state)
                answered.append((call, results))
                if self._on_call is not None:  # counted once it ran, not when re-sent
                    self._on_call(len(call.encoded))
            except redis.RedisError as exc:
                call.fail(exc)
        if self._publish is not None and answered:
            # Handed on apart from the batch, so that a slow broker does not hold back
            # the next reservation batches, only the answers of these purchases.
            self._background(self._hand_on_then_answer(answered))
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
            await self._client.script_load(self._scripts.reserve.script)
            if attempt:  # a slot still moving or a cluster electing a master: wait a little
                await asyncio.sleep(0.05 * 2**attempt)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
            for call in calls:
                call.fail(exc)
            return
        await self._flush(calls, attempt + 1)

    async def _follow(self, call: _Call, refusal: Exception) -> None:
        """Learn where the call goes next from a node's refusal."""
        log.debug("reservation call for %s refused: %r", call.segment, refusal)
        if isinstance(refusal, MovedError) and isinstance(self._client, RedisCluster):
            await self._client.nodes_manager.move_slot(refusal)
            call.route = Route()
        elif isinstance(refusal, AskError):  # one call, during a slot migration
            call.route = Route(f"{refusal.host}:{refusal.port}", asking=True)
        else:
            call.route = Route()
            if isinstance(refusal, ClusterDownError):
                self._refresh_slots()

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

    # Sending ----------------------------------------------------------------------------

    async def _send(self, calls: list[_Call]) -> list[Any]:
        """Every call, one write per server; per call its reply, or the error that left
        its outcome unknown.

        Never re-sent after such an error: a lost connection fails the call (503), it
        cannot run twice. And each call carries the moment we stop waiting for it, in
        its server's clock: a call that reaches Redis later (a frozen or slow Redis
        resuming) decides nothing, so a shopper answered 503 is never sold a unit behind
        their back."""
        if not isinstance(self._client, RedisCluster):
            single = await send_single(self._client, [self._pack(c, "") for c in calls])
            self._learn_from(single, "")
            return single
        groups: dict[Route, list[int]] = {}
        try:
            if not self._ready:
                await self._client.initialize()
                self._ready = True
            for i, call in enumerate(calls):
                node = (
                    call.route.node
                    if call.route.asking
                    else node_of(self._client, call.segment).name
                )
                groups.setdefault(Route(node, call.route.asking), []).append(i)
                call.route = Route()  # an ASK redirection holds for one call only
        except RedisClusterException as exc:  # no slot map (yet): not a RedisError upstream
            self._refresh_slots()
            raise Unavailable(f"the Redis Cluster's slots are not known: {exc}") from exc
        sent = await asyncio.gather(
            *(self._send_to(route, [calls[i] for i in idx]) for route, idx in groups.items()),
            return_exceptions=True,
        )
        replies: list[Any] = [None] * len(calls)
        for (route, idx), result in zip(groups.items(), sent, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            if isinstance(result, Exception):
                log.debug("reservation calls to %s failed: %r", route.node, result)
                self._refresh_slots()  # the node may be gone: learn who serves its slots
                failed = (
                    result if isinstance(result, redis.RedisError) else Unavailable(str(result))
                )
                result = [failed] * len(idx)
            else:
                self._learn_from(result, route.node)
            for i, reply in zip(idx, result, strict=True):
                replies[i] = reply
        return replies

    async def _send_to(self, route: Route, calls: list[_Call]) -> list[Any]:
        assert isinstance(self._client, RedisCluster)
        node = self._client.nodes_manager.get_node(node_name=route.node)
        if node is None:
            raise Unavailable(f"no Redis Cluster node {route.node} is known")
        return await send_to_node(node, [self._pack(c, route.node) for c in calls], route.asking)

    def _pack(self, call: _Call, node: str) -> bytes:
        template = persist_template(call.segment, self._queue) if self._queue else None
        return pack_call(
            self._scripts.reserve.sha.encode(),
            call.segment,
            call.encoded,
            self._queue,
            template,
            self._deadline(node),
            call.loans,
        )

    def _refresh_slots(self) -> None:
        """Re-read the cluster's slot map soon (at most once a second)."""
        if not isinstance(self._client, RedisCluster):
            return
        now = time.monotonic()
        if now - self._refreshed_at >= REFRESH_EVERY:
            self._refreshed_at = now
            self._background(self._refresh(self._client))

    @staticmethod
    async def _refresh(client: RedisCluster) -> None:
        try:
            await client.nodes_manager.initialize()
        except Exception as exc:  # noqa: BLE001 - tried again on the next failure
            log.info("could not re-read the Redis Cluster's slots: %r", exc)

    # Clocks and state -------------------------------------------------------------------

    def _node_name(self, segment: str) -> str:
        return node_of(self._client, segment).name if isinstance(self._client, RedisCluster) else ""

    def _deadline(self, node: str) -> int:
        offset = self._clock_offset_ms.get(node)
        if offset is None and self._clock_offset_ms:
            offset = min(self._clock_offset_ms.values())
        if offset is None:
            return 0
        return int(time.time() * 1000) + offset + int(timeout_of(self._client) * 1000)

    def _learn_clock(self, node: str, redis_now_ms: int) -> None:
        self._clock_offset_ms[node] = redis_now_ms - int(time.time() * 1000)

    def _learn_from(self, replies: list[Any], node: str) -> None:
        last = next((r for r in reversed(replies) if isinstance(r, list) and len(r) >= 3), None)
        if last is not None:
            self._learn_clock(node, int(last[-3]))

    def _learn_state(self, segment: str, state: SegmentState) -> None:
        self._levels[segment] = state.remaining
        self._segments[sale_of(segment)] = state.segments

    async def sync_clock(self) -> None:
        """Before the first purchase: learn the cluster's slots (redis-py's asyncio
        cluster client misroutes script calls made before it has), and Redis's clock, so
        that every call has a deadline."""
        if isinstance(self._client, RedisCluster):
            await self._client.initialize()
            self._ready = True
            for node in self._client.get_primaries():
                secs, micros = await self._client.time(target_nodes=node)
                self._learn_clock(node.name, int(secs) * 1000 + int(micros) // 1000)
            return
        secs, micros = await self._client.time()
        self._learn_clock("", int(secs) * 1000 + int(micros) // 1000)

    async def units(self, sale: str) -> tuple[int, int, int, int]:
        """(for sale, in flight, live, orders returned) of a sale, each segment's read in
        one MULTI/EXEC: the figures a sampler reads to check that no instant oversells.
        Units lent between segments count as for sale until their borrower credits them."""
        count = self._segments.get(sale) or await self._count(sale)
        totals = [0, 0, 0, 0]
        travelling: list[tuple[str, str, int]] = []
        for name in segment_names(sale, count):
            keys = SaleKeys(name)
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(keys.stock)
                pipe.hmget(keys.meta, "inflight", "live")
                pipe.scard(keys.restored)
                pipe.hgetall(keys.loans)
                remaining, (inflight, live), returned, loans = await pipe.execute()
            travelling += loans_of(sale, loans)
            for i, figure in enumerate((remaining, inflight, live, returned)):
                totals[i] += int(figure or 0)
        if travelling:
            pipe = self._client.pipeline(transaction=False)
            for borrower, loan_id, _ in travelling:
                pipe.zscore(SaleKeys(borrower).received, loan_id)
            receipts = await pipe.execute()
            totals[0] += sum(
                u for (_, _, u), r in zip(travelling, receipts, strict=True) if r is None
            )
        return totals[0], totals[1], totals[2], totals[3]

    async def _count(self, sale: str) -> int:
        count = int(await self._client.hget(SaleKeys(sale).meta, "segments") or 1)
        self._segments[sale] = count
        return count

    async def close(self) -> None:
        await self._client.aclose()
