"""The hot path on a real Redis Cluster (3 masters, each with a replica): purchases of
one moment go out as one write per master, a sale's segments spread over the masters,
and a failover or a slot migration mid-sale costs some 503s but never a purchase
decided twice or a unit lost."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio.cluster
from redis.cluster import ClusterNode, RedisCluster

from flashsale.local.cluster import LocalRedisCluster
from flashsale.stock import AsyncStock, Outcome, ReserveResult, Stock, segment_name
from flashsale.stock.keys import SaleKeys
from tests.helpers.limits import sale_limits
from tests.helpers.wait import wait_for


@pytest.fixture
def cluster() -> Iterator[LocalRedisCluster]:
    built = LocalRedisCluster(Path(tempfile.mkdtemp(prefix="flashsale-cluster-"))).start()
    try:
        yield built
    finally:
        built.stop()


@pytest.fixture
def stock(cluster: LocalRedisCluster) -> Iterator[Stock]:
    nodes = [ClusterNode("127.0.0.1", node.port) for node in cluster.nodes]
    built = Stock(RedisCluster(startup_nodes=nodes, socket_timeout=2))
    yield built
    built.close()


@pytest.fixture
async def fast(cluster: LocalRedisCluster) -> AsyncIterator[AsyncStock]:
    nodes = [redis.asyncio.cluster.ClusterNode("127.0.0.1", n.port) for n in cluster.nodes]
    client = redis.asyncio.cluster.RedisCluster(
        startup_nodes=nodes, socket_timeout=2, socket_connect_timeout=1, max_connections=64
    )
    built = AsyncStock(client)
    await built.sync_clock()
    yield built
    await built.close()


def new_id() -> str:
    return str(uuid.uuid4())


def admin(stock: Stock) -> RedisCluster:
    return stock._client  # type: ignore[return-value]  # the test's own cluster client


def at_rest(stock: Stock, sale: str, total: int) -> None:
    f = stock.sale_in_redis(sale)
    assert (f.total, f.remaining + f.inflight + f.live) == (total, total), f
    assert f.outbox == f.inflight  # one unit per purchase in these tests


async def test_a_hot_sale_spreads_over_every_master(stock: Stock, fast: AsyncStock) -> None:
    stock.load("hot", sale_limits(total=300, per_user_limit=1, segments=6))
    masters = {
        admin(stock).get_node_from_key(SaleKeys(segment_name("hot", k, 6)).meta).name
        for k in range(6)
    }
    assert len(masters) == 3, masters  # six slots of one sale on three masters
    results = await asyncio.gather(
        *(fast.reserve("hot", f"b{i}", 1, new_id()) for i in range(2000))
    )
    assert Counter(r.outcome for r in results) == {Outcome.ACCEPTED: 300, Outcome.SOLD_OUT: 1700}
    accepted = {r.order_id for r in results if r.outcome is Outcome.ACCEPTED}
    assert stock.outbox_members("hot") == accepted
    at_rest(stock, "hot", 300)
    # Fifty parallel requests of one shopper: the per-user limit is exact.
    stock.load("limit", sale_limits(total=300, per_user_limit=3, segments=6))
    results = await asyncio.gather(*(fast.reserve("limit", "one", 1, new_id()) for _ in range(50)))
    assert Counter(r.outcome for r in results) == {Outcome.ACCEPTED: 3, Outcome.LIMIT_REACHED: 47}


async def test_the_tail_over_eight_segments(stock: Stock, fast: AsyncStock) -> None:
    stock.load("tail", sale_limits(total=10, segments=8))
    outcomes = [(await fast.reserve("tail", f"t{i}", 1, new_id())).outcome for i in range(12)]
    assert outcomes == [Outcome.ACCEPTED] * 10 + [Outcome.SOLD_OUT] * 2
    at_rest(stock, "tail", 10)


async def _buy_steadily(
    fast: AsyncStock, sale: str, seconds: float, per_second: int = 100
) -> list[tuple[str, ReserveResult | Exception]]:
    """Purchases at a steady rate; per order id its answer or the error the API would
    turn into a 503."""
    answers: list[tuple[str, ReserveResult | Exception]] = []

    async def one(i: int) -> None:
        order = new_id()
        try:
            answers.append((order, await fast.reserve(sale, f"s{i}", 1, order)))
        except redis.RedisError as exc:
            answers.append((order, exc))

    tasks = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        tasks.append(asyncio.ensure_future(one(i)))
        i += 1
        await asyncio.sleep(1 / per_second)
    await asyncio.gather(*tasks)
    return answers


def _check_decided_once(
    stock: Stock, sale: str, total: int, answers: list[tuple[str, ReserveResult | Exception]]
) -> Counter[str]:
    """Every accepted purchase is in the outbox once; an errored one at most once (its
    outcome was unknown); nothing else is; and the units add up."""
    outbox = stock.outbox_members(sale)
    accepted = {
        o for o, a in answers if isinstance(a, ReserveResult) and a.outcome is Outcome.ACCEPTED
    }
    errored = {o for o, a in answers if isinstance(a, Exception)}
    assert accepted <= outbox
    assert outbox <= accepted | errored
    at_rest(stock, sale, total)
    counts = Counter(
        a.outcome.value if isinstance(a, ReserveResult) else type(a).__name__ for _, a in answers
    )
    print(f"{sale}: {dict(counts)}; outbox {len(outbox)}, of them errored {len(outbox & errored)}")
    return counts


async def test_a_master_killed_mid_sale(
    cluster: LocalRedisCluster, stock: Stock, fast: AsyncStock
) -> None:
    stock.load("failover", sale_limits(total=100_000, segments=3))
    client = admin(stock)
    victim = client.get_node_from_key(SaleKeys(segment_name("failover", 1, 3)).meta)
    node = next(n for n in cluster.nodes if n.port == victim.port)
    assert node.proc is not None
    buying = asyncio.ensure_future(_buy_steadily(fast, "failover", 8.0))
    await asyncio.sleep(2.0)
    assert client.execute_command("WAIT", 1, 2000, target_nodes=victim) >= 0
    os.kill(node.proc.pid, signal.SIGKILL)
    answers = await buying
    counts = _check_decided_once(stock, "failover", 100_000, answers)
    # The failover cost some purchases a 503, and the sale went on after it.
    assert counts["accepted"] > 0.6 * len(answers), counts
    late = [a for _, a in answers[-100:]]
    assert all(isinstance(a, ReserveResult) for a in late), Counter(map(type, late))


def _migrate(client: RedisCluster, slot: int, pause: float) -> None:
    """Move one slot to another master key by key, as `redis-cli --cluster reshard` does,
    slowly enough that purchases meet it half-moved."""
    masters = client.get_primaries()
    source = client.nodes_manager.get_node_from_slot(slot)
    target = next(m for m in masters if m.name != source.name)
    src = redis.Redis(host=source.host, port=int(source.port))
    dst = redis.Redis(host=target.host, port=int(target.port))
    src_id, dst_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
    while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1):
        src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys)
        time.sleep(pause)
    for master in masters:
        redis.Redis(host=master.host, port=int(master.port)).execute_command(
            "CLUSTER SETSLOT", slot, "NODE", dst_id
        )


async def test_a_segment_migrates_to_another_master_mid_sale(
    stock: Stock, fast: AsyncStock
) -> None:
    stock.load("moving", sale_limits(total=100_000, segments=3))
    client = admin(stock)
    slot = client.keyslot(SaleKeys(segment_name("moving", 2, 3)).meta)
    before = client.nodes_manager.get_node_from_slot(slot).name
    buying = asyncio.ensure_future(_buy_steadily(fast, "moving", 6.0))
    await asyncio.sleep(1.0)
    await asyncio.to_thread(_migrate, client, slot, 0.02)
    answers = await buying
    client.nodes_manager.initialize()
    assert client.nodes_manager.get_node_from_slot(slot).name != before
    counts = _check_decided_once(stock, "moving", 100_000, answers)
    assert counts["accepted"] > 0.8 * len(answers), counts
    wait_for(lambda: stock.remaining("moving") + stock.outbox_size("moving") == 100_000)
