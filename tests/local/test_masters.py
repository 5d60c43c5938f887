"""Each master's share of the work: the segments it serves and what INFO says it ran."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flashsale import clients
from flashsale.local.cluster import LocalRedisCluster
from flashsale.local.masters import master_of_segments, read_masters, share, work_between
from flashsale.stock import segment_names
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRedisCluster]:
    root = Path(tempfile.mkdtemp(prefix="flashsale-masters-"))
    built = LocalRedisCluster(root).start()
    try:
        yield built
    finally:
        built.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_each_segment_is_placed_on_the_master_serving_its_keys(
    cluster: LocalRedisCluster,
) -> None:
    client = clients.stock_redis_at(cluster.url)
    assert isinstance(client, redis.cluster.RedisCluster)
    names = segment_names("tv-drop", 12)
    placement = master_of_segments(client, names)
    assert len(placement) == 3 and sorted(n for ns in placement.values() for n in ns) == sorted(
        names
    )
    for address, served in placement.items():
        for name in served:
            for key in (SaleKeys(name).meta, SaleKeys(name).stock):
                slot = int(client.execute_command("CLUSTER KEYSLOT", key))
                assert client.nodes_manager.get_node_from_slot(slot).name == address
    client.close()


def test_a_script_call_counts_on_the_master_that_ran_it(cluster: LocalRedisCluster) -> None:
    client = clients.stock_redis_at(cluster.url)
    assert isinstance(client, redis.cluster.RedisCluster)
    [(address, [segment])] = [
        (a, s) for a, s in master_of_segments(client, ["tv-drop/1"]).items() if s
    ]
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    script(keys=[SaleKeys(segment).stock])  # loaded: no NOSCRIPT reply counted below
    before = read_masters(client)
    for _ in range(5):
        script(keys=[SaleKeys(segment).stock])
    work = {w.address: w for w in work_between(before, read_masters(client))}
    assert set(work) == set(before) and len(work) == 3
    assert work[address].evalsha_calls == 5 and work[address].evalsha_usec > 0
    assert all(w.evalsha_calls == 0 for a, w in work.items() if a != address)
    assert all(w.cpu_usec >= 0 and w.commands_usec >= w.evalsha_usec for w in work.values())
    client.close()


def test_one_redis_is_the_only_master(platform: Platform) -> None:
    names = segment_names("tv-drop", 3)
    [(address, served)] = master_of_segments(platform.redis, names).items()
    assert served == names and address.endswith(f":{platform.redis_url.split(':')[-1][:-2]}")
    assert list(read_masters(platform.redis)) == [address]
    assert share(1, 4) == 25.0 and share(1, 0) == 0.0
