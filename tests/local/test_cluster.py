"""The local Redis Cluster the tests and `up` build on: real nodes joined with
redis-cli, the stock scripts running on it (every call touches one slot), sales spread
over the masters, and a killed master's replica taking over."""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import ClusterNode, RedisCluster

from flashsale.local.cluster import LocalRedisCluster
from flashsale.stock import Outcome, Purchase, Stock
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


def client_of(cluster: LocalRedisCluster) -> RedisCluster:
    nodes = [ClusterNode("127.0.0.1", node.port) for node in cluster.nodes]
    return RedisCluster(startup_nodes=nodes, socket_timeout=2)


def test_the_stock_scripts_run_on_a_cluster_one_slot_per_call(cluster: LocalRedisCluster) -> None:
    assert cluster.url.startswith("redis+cluster://127.0.0.1:")
    client = client_of(cluster)
    stock = Stock(client)
    masters_used = set()
    for n in range(6):
        sale = f"cluster-{n}"
        assert stock.load(sale, sale_limits(total=5, per_user_limit=1)) == 5
        masters_used.add(client.get_node_from_key(SaleKeys(sale).meta).name)
        purchases = [Purchase(f"u{i}", 1, str(uuid.uuid4())) for i in range(7)]
        outcomes = [r.outcome for r in stock.reserve_many(sale, purchases)]
        assert outcomes == [Outcome.ACCEPTED] * 5 + [Outcome.SOLD_OUT] * 2
        first, second = purchases[0].order_id, purchases[1].order_id
        assert stock.ack_many(sale, {first: False}) == 1
        assert stock.release(sale, second) == 1
        assert stock.restore_many(sale, [(first, "u0", 1)]) == [1]
        assert stock.remaining(sale) == 2
        assert stock.outbox_size(sale) == 3
        # The status and the platform figures read a sale on a cluster too.
        figures = stock.sale_in_redis(sale)
        assert (figures.total, figures.remaining, figures.inflight, figures.live) == (5, 2, 3, 0)
        backlog = stock.backlogs([sale])[sale]
        assert (backlog.remaining, backlog.outbox) == (2, 3) and backlog.oldest_age_seconds >= 0
    # Each sale's keys hash to their own slot, so sales spread over the masters.
    assert len(masters_used) >= 2
    client.close()


def test_a_killed_master_fails_over_to_its_replica(cluster: LocalRedisCluster) -> None:
    client = client_of(cluster)
    stock = Stock(client)
    sale = "failover"
    stock.load(sale, sale_limits(total=9))
    master = client.get_node_from_key(SaleKeys(sale).meta)
    assert client.execute_command("WAIT", 1, 2000, target_nodes=master) >= 1  # replicated
    node = next(n for n in cluster.nodes if n.port == master.port)
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def served_again() -> bool:
        try:
            return stock.remaining(sale) == 9
        except Exception:  # noqa: BLE001 - the slot is unserved until the replica takes over
            return False

    wait_for(served_again, timeout=30, every=0.2)
    took = time.monotonic() - killed_at
    assert client.get_node_from_key(SaleKeys(sale).meta).port != master.port
    assert took < 30
    client.close()
