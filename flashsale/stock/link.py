"""The hot path's link to Redis or a Redis Cluster: which server a segment's calls go to,
one write per server, what a refusal means, and each server's clock.

A call a node refused did not run (NOSCRIPT after a restart or failover, MOVED or ASK
while a slot moves, TRYAGAIN, CLUSTERDOWN): it may go again, to the same segment with the
same order ids. A call whose connection failed after it was written may have run: it is
never sent again, and its deadline (in its server's clock) makes it decide nothing if it
reaches Redis after the caller stopped waiting."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)

from flashsale.stock.scripts import Scripts
from flashsale.stock.wire import (
    AnyRedis,
    Route,
    node_of,
    pack,
    send_by_segment,
    send_single,
    send_to_node,
    timeout_of,
)

log = logging.getLogger(__name__)

# Calls beside the reserve calls (loans, their settling, reads of the levels) in flight
# at once, each on a connection of its own.
MAX_SIDE_CALLS = 16
REFRESH_EVERY = 1.0  # seconds between slot-map refreshes after a failed node
# Errors meaning a node did not run the call: it may go again.
REFUSED = (AskError, TryAgainError, ClusterDownError, NoScriptError)


class Unavailable(redis.ConnectionError):
    """The purchase could not be decided now (answered 503 with Retry-After)."""


class Routed(Protocol):
    segment: str
    route: Route


C = TypeVar("C", bound=Routed)


class Link:
    def __init__(self, client: AnyRedis, scripts: Scripts[Any]) -> None:
        self.client = client
        self._scripts = scripts
        # Redis's clock minus ours, per server, as its last answer showed it. Read on
        # receipt, so it errs early: a deadline set from it falls at or before the moment
        # we stop waiting, never after.
        self._clock_offset_ms: dict[str, int] = {}
        self._ready = not isinstance(client, RedisCluster)  # the slot map was read
        self._refreshed_at = 0.0
        self._side_calls = asyncio.Semaphore(MAX_SIDE_CALLS)
        self._tasks: set[asyncio.Future[Any]] = set()

    def background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Before the first purchase: learn the cluster's slots (redis-py's asyncio
        cluster client misroutes script calls made before it has), and each server's
        clock, so that every call has a deadline."""
        if isinstance(self.client, RedisCluster):
            await self.client.initialize()
            self._ready = True
            for node in self.client.get_primaries():
                secs, micros = await self.client.time(target_nodes=node)
                self.learn_clock(node.name, int(secs) * 1000 + int(micros) // 1000)
            return
        secs, micros = await self.client.time()
        self.learn_clock("", int(secs) * 1000 + int(micros) // 1000)

    async def send(self, calls: Sequence[C], packer: Callable[[C, int], bytes]) -> list[Any]:
        """Every call, packed with its server's deadline, one write per server; per call
        its reply, its refusal, or the error that left its outcome unknown."""
        if not isinstance(self.client, RedisCluster):
            single = await send_single(self.client, [packer(c, self.deadline("")) for c in calls])
            self._learn_from(single, "")
            return single
        groups: dict[Route, list[int]] = {}
        try:
            if not self._ready:
                await self.client.initialize()
                self._ready = True
            for i, call in enumerate(calls):
                node = call.route.node
                if not call.route.asking:
                    node = node_of(self.client, call.segment).name
                groups.setdefault(Route(node, call.route.asking), []).append(i)
                call.route = Route()  # an ASK redirection holds for one call only
        except RedisClusterException as exc:  # no slot map (yet): not a RedisError upstream
            self.refresh_slots()
            raise Unavailable(f"the Redis Cluster's slots are not known: {exc}") from exc
        sent = await asyncio.gather(
            *(
                self._send_to(route, [calls[i] for i in idx], packer)
                for route, idx in groups.items()
            ),
            return_exceptions=True,
        )
        replies: list[Any] = [None] * len(calls)
        for (route, idx), result in zip(groups.items(), sent, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            if isinstance(result, Exception):
                log.debug("reservation calls to %s failed: %r", route.node, result)
                self.refresh_slots()  # the node may be gone: learn who serves its slots
                failed = (
                    result if isinstance(result, redis.RedisError) else Unavailable(str(result))
                )
                result = [failed] * len(idx)
            else:
                self._learn_from(result, route.node)
            for i, reply in zip(idx, result, strict=True):
                replies[i] = reply
        return replies

    async def _send_to(
        self, route: Route, calls: list[C], packer: Callable[[C, int], bytes]
    ) -> list[Any]:
        assert isinstance(self.client, RedisCluster)
        node = self.client.nodes_manager.get_node(node_name=route.node)
        if node is None:
            raise Unavailable(f"no Redis Cluster node {route.node} is known")
        deadline = self.deadline(route.node)
        return await send_to_node(node, [packer(c, deadline) for c in calls], route.asking)

    async def follow(self, refusal: Exception) -> Route:
        """Where a refused call goes next."""
        if isinstance(refusal, MovedError) and isinstance(self.client, RedisCluster):
            await self.client.nodes_manager.move_slot(refusal)
        elif isinstance(refusal, AskError):  # one call, during a slot migration
            return Route(f"{refusal.host}:{refusal.port}", asking=True)
        elif isinstance(refusal, ClusterDownError):
            self.refresh_slots()
        return Route()

    async def load(self, name: str) -> None:
        """Load a script into every server's cache (after NOSCRIPT)."""
        await self.client.script_load(getattr(self._scripts, name).script)

    async def script_call(self, name: str, segment: str, keys: list[str], args: list[Any]) -> Any:
        """One call of a script beside the reserve calls, on the same raw wire, at most
        MAX_SIDE_CALLS at once; sent again only when the server refused it (it did not
        run): after loading the script, or learning the slot's new master."""
        packed = pack("EVALSHA", getattr(self._scripts, name).sha, len(keys), *keys, *args)
        for attempt in range(2):
            async with self._side_calls:
                (reply,) = await send_by_segment(self.client, [(segment, packed)])
            if isinstance(reply, NoScriptError) and not attempt:
                await self.load(name)
            elif isinstance(reply, MovedError) and not attempt:
                await self.follow(reply)
            elif isinstance(reply, Exception):
                raise reply
            else:
                return reply
        raise Unavailable(f"Redis kept refusing {name}.lua")

    async def read(self, items: Sequence[tuple[str, bytes]]) -> list[Any]:
        """Plain commands, each to its segment's server (one write per server)."""
        async with self._side_calls:
            replies = await send_by_segment(self.client, items)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def refresh_slots(self) -> None:
        """Re-read the cluster's slot map soon (at most once a second)."""
        if not isinstance(self.client, RedisCluster):
            return
        now = time.monotonic()
        if now - self._refreshed_at >= REFRESH_EVERY:
            self._refreshed_at = now
            self.background(self._refresh(self.client))

    @staticmethod
    async def _refresh(client: RedisCluster) -> None:
        try:
            await client.nodes_manager.initialize()
        except Exception as exc:  # noqa: BLE001 - tried again on the next failure
            log.info("could not re-read the Redis Cluster's slots: %r", exc)

    def node_name(self, segment: str) -> str:
        return node_of(self.client, segment).name if isinstance(self.client, RedisCluster) else ""

    def deadline(self, node: str) -> int:
        """When a call sent now to `node` is given up on, in that server's clock (0: no
        clock learnt yet)."""
        offset = self._clock_offset_ms.get(node)
        if offset is None and self._clock_offset_ms:
            offset = min(self._clock_offset_ms.values())
        if offset is None:
            return 0
        return int(time.time() * 1000) + offset + int(timeout_of(self.client) * 1000)

    def learn_clock(self, node: str, redis_now_ms: int) -> None:
        self._clock_offset_ms[node] = redis_now_ms - int(time.time() * 1000)

    def _learn_from(self, replies: list[Any], node: str) -> None:
        last = next((r for r in reversed(replies) if isinstance(r, list) and len(r) >= 4), None)
        if last is not None:
            self.learn_clock(node, int(last[-4]))

    async def close(self) -> None:
        await self.client.aclose()
