"""The hot path's wire: reserve.lua calls packed in the Redis protocol by hand, written
to a server in one go, one write per server.

Packed here rather than by redis-py's pipeline, whose generic per-argument encoding was
the largest cost of a reservation in the profile. On a Redis Cluster the calls are
grouped by the master that serves their slot and each group goes out as one write; this
reaches into redis-py's cluster client (its slot map and its nodes' connections),
which is why redis is pinned to one minor release in pyproject.toml and why
tests/test_stock_cluster.py exercises every part of it on a real cluster."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ResponseError

from flashsale.handoff import MessageTemplate
from flashsale.stock.calls import InvalidPurchase, Loan, Purchase, reserve_call
from flashsale.stock.keys import SaleKeys

BATCH_TIMEOUT = 5.0  # seconds, when the client sets no socket timeout
_ASKING = b"*1\r\n$6\r\nASKING\r\n"

AnyRedis = redis.asyncio.Redis | RedisCluster


def bulk(value: Any) -> bytes:
    """One RESP bulk string; str() and encode() as redis-py's packer does them."""
    raw = value if type(value) is bytes else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One purchase's three keys and four arguments, already in RESP."""

    keys: bytes
    args: bytes

    @classmethod
    def of(cls, segment: str, purchase: Purchase) -> Encoded:
        try:
            return cls(
                b"".join(map(bulk, purchase.keys(SaleKeys(segment)))),
                b"".join(map(bulk, purchase.args())),
            )
        except UnicodeEncodeError:
            raise InvalidPurchase("the purchase holds text that is not valid Unicode") from None


def pack_call(
    sha: bytes,
    segment: str,
    encoded: Sequence[Encoded],
    queue_key: str,
    message: MessageTemplate | None,
    deadline_ms: int,
    loans: Sequence[Loan] = (),
) -> bytes:
    """EVALSHA of reserve.lua in the Redis protocol (RESP), byte for byte what redis-py
    sends for `reserve_call`, from purchases encoded one by one when they were asked."""
    fixed_keys, fixed_args = reserve_call(segment, (), queue_key, message, deadline_ms, loans)
    count = len(encoded)
    return b"".join(
        [
            b"*%d\r\n$7\r\nEVALSHA\r\n" % (len(fixed_keys) + len(fixed_args) + 7 * count + 3),
            bulk(sha),
            bulk(len(fixed_keys) + 3 * count),
            *map(bulk, fixed_keys),
            *(e.keys for e in encoded),
            *map(bulk, fixed_args),
            *(e.args for e in encoded),
        ]
    )


@dataclass(frozen=True, slots=True)
class Route:
    """Where a packed call goes: a node name ("" on a single Redis), and whether it is a
    one-shot ASK redirection during a slot migration."""

    node: str = ""
    asking: bool = False


async def exchange(conn: Any, packed: Sequence[bytes], asking: bool = False) -> list[Any]:
    """Write every packed call at once, then read the replies in order; a call's own error
    reply (NOSCRIPT, MOVED...) is its reply, the next call's follows. Any other failure
    leaves the outcomes unknown: the connection is dropped and the error raised."""
    timeout = conn.socket_timeout or BATCH_TIMEOUT
    try:
        # One deadline for the whole batch rather than one per reply.
        async with asyncio.timeout(timeout):
            prefix = _ASKING if asking else b""
            await conn.send_packed_command(b"".join(prefix + p for p in packed), check_health=False)
            replies: list[Any] = []
            for _ in packed:
                if asking:
                    await conn.read_response(timeout=math.inf)
                try:
                    replies.append(await conn.read_response(timeout=math.inf))
                except ResponseError as exc:
                    replies.append(exc)
        return replies
    except TimeoutError:
        await conn.disconnect()
        raise redis.TimeoutError("Redis did not answer the reservation batch in time") from None
    except BaseException:
        await conn.disconnect()  # replies may still be on their way: never reuse it
        raise


def timeout_of(client: AnyRedis) -> float:
    kwargs = (
        client.nodes_manager.connection_kwargs
        if isinstance(client, RedisCluster)
        else client.connection_pool.connection_kwargs
    )
    return float(kwargs.get("socket_timeout") or BATCH_TIMEOUT)


def node_of(client: RedisCluster, segment: str) -> ClusterNode:
    """The master serving the segment's slot, as the client's slot map has it."""
    return client.nodes_manager.get_node_from_slot(client.keyslot(SaleKeys(segment).meta))


def pack(*parts: Any) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(parts) + b"".join(map(bulk, parts))


async def send_by_segment(client: AnyRedis, items: Sequence[tuple[str, bytes]]) -> list[Any]:
    """Each packed command to the server of its segment, one write per server; the
    replies in order, a command's own error reply as its reply."""
    if not isinstance(client, RedisCluster):
        return await send_single(client, [packed for _, packed in items])
    groups: dict[str, list[int]] = {}
    for i, (segment, _) in enumerate(items):
        groups.setdefault(node_of(client, segment).name, []).append(i)
    nodes = [client.nodes_manager.get_node(node_name=name) for name in groups]
    sent = await asyncio.gather(
        *(
            send_to_node(node, [items[i][1] for i in idx], False)
            for node, idx in zip(nodes, groups.values(), strict=True)
            if node is not None
        )
    )
    replies: list[Any] = [None] * len(items)
    for idx, answers in zip(groups.values(), sent, strict=True):
        for i, reply in zip(idx, answers, strict=True):
            replies[i] = reply
    return replies


async def send_single(client: redis.asyncio.Redis, packed: Sequence[bytes]) -> list[Any]:
    pool = client.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped upstream
    try:
        return await exchange(conn, packed)
    finally:
        await pool.release(conn)


async def send_to_node(node: ClusterNode, packed: Sequence[bytes], asking: bool) -> list[Any]:
    conn = node.acquire_connection()
    try:
        return await exchange(conn, packed, asking)
    finally:
        node.release(conn)
