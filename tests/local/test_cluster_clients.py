"""The client factory on a real local Redis Cluster: a `redis+cluster://` URL gives a
cluster client, sync and asyncio, with each role's policy on every node, scripts run
through `register_script`, and the broker stays one plain Redis."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

from flashsale import clients
from flashsale.clients import Role
from flashsale.embedded import RedisServer, free_port
from flashsale.local.cluster import LocalRedisCluster
from flashsale.settings import Settings

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRedisCluster]:
    root = Path(tempfile.mkdtemp(prefix="flashsale-cluster-clients-"))
    built = LocalRedisCluster(root).start()
    try:
        yield built
    finally:
        built.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def broker() -> Iterator[RedisServer]:
    root = Path(tempfile.mkdtemp(prefix="flashsale-broker-"))
    server = RedisServer(root, appendonly=False).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def settings(cluster: LocalRedisCluster, broker: RedisServer) -> Settings:
    return Settings(redis_url=cluster.url, broker_url=broker.url)


def keys_on_every_master(client: redis.cluster.RedisCluster) -> list[str]:
    """One key per master, so a test touches each of them."""
    found: dict[str, str] = {}
    while len(found) < len(client.get_primaries()):
        key = f"k:{uuid.uuid4().hex}"
        found.setdefault(client.get_node_from_key(key).name, key)
    return list(found.values())


def test_the_sync_factory_gives_a_cluster_client_that_runs_scripts(settings: Settings) -> None:
    client = clients.stock_redis(settings)
    assert isinstance(client, redis.cluster.RedisCluster)
    try:
        assert len(client.get_primaries()) == 3 and len(client.get_replicas()) == 3
        incr = client.register_script(INCR)
        for key in keys_on_every_master(client):
            assert incr(keys=[key], args=[2]) == 2
            assert incr(keys=[key], args=[3]) == 5
        # The role's policy holds on every node.
        for node in client.get_nodes():
            assert node.redis_connection is not None
            kwargs = node.redis_connection.connection_pool.connection_kwargs
            assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (5, 2)
    finally:
        client.close()
    probe = clients.stock_redis(settings, Role.PROBE)
    try:
        node = probe.get_default_node()
        assert node.redis_connection is not None
        assert node.redis_connection.connection_pool.connection_kwargs["socket_timeout"] == 1
    finally:
        probe.close()


async def test_the_async_factory_gives_an_initialised_cluster_client(settings: Settings) -> None:
    lazy = clients.async_stock_redis(settings)
    assert isinstance(lazy, redis.asyncio.cluster.RedisCluster)
    assert lazy.get_primaries() == []  # the topology is read on the first command
    await lazy.aclose()

    client = await clients.async_stock_redis_ready(settings)
    assert isinstance(client, redis.asyncio.cluster.RedisCluster)
    try:
        assert len(client.get_primaries()) == 3 and len(client.get_replicas()) == 3
        for node in client.get_nodes():  # the hot path's policy, per node
            assert node.max_connections == 512
            assert node.connection_kwargs["socket_timeout"] == 2
            assert node.connection_kwargs["health_check_interval"] == 30
        incr = client.register_script(INCR)
        keys = [f"a:{uuid.uuid4().hex}" for _ in range(12)]  # spread over the slots
        assert len({client.get_node_from_key(key).name for key in keys}) >= 2
        assert [await incr(keys=[key], args=[7]) for key in keys] == [7] * len(keys)
        assert await client.ping()
    finally:
        await client.aclose()


async def test_one_redis_is_ready_as_it_is(broker: RedisServer) -> None:
    client = await clients.async_stock_redis_ready(Settings(redis_url=broker.url))
    assert isinstance(client, redis.asyncio.Redis)
    try:
        assert await client.ping()
    finally:
        await client.aclose()


async def test_a_cluster_out_of_reach_is_an_outage_like_any_other() -> None:
    """redis-py's RedisClusterException is no RedisError: the factory makes it one, so the
    callers' outage handling (loops, CLI, API start-up) takes a cluster down too."""
    gone = Settings(redis_url=f"redis+cluster://127.0.0.1:{free_port()}", broker_url="redis://x")
    with pytest.raises(redis.ConnectionError, match="cannot be connected"):
        clients.stock_redis(gone)
    with pytest.raises(redis.ConnectionError, match="cannot be connected"):
        await clients.async_stock_redis_ready(gone)


def test_the_broker_is_one_plain_redis(settings: Settings, broker: RedisServer) -> None:
    sync = clients.broker_redis(settings)
    assert isinstance(sync, redis.Redis)
    assert sync.ping()
    sync.close()
    assert isinstance(clients.async_broker_redis(settings), redis.asyncio.Redis)
    with pytest.raises(ValueError, match="names a Redis Cluster"):
        clients.redis_client(str(settings.redis_url))
    with pytest.raises(ValueError, match="names a Redis Cluster"):
        clients.async_redis_client(str(settings.redis_url))


async def test_credentials_in_the_url_reach_every_node(cluster: LocalRedisCluster) -> None:
    for node in cluster.nodes:  # ACL users are per node
        admin = clients.redis_client(node.url, Role.PROBE)
        admin.execute_command("ACL", "SETUSER", "shop", "on", ">p@ss", "~*", "+@all")
        admin.close()
    seeds = ",".join(cluster.seeds)
    good = clients.stock_redis_at(f"redis+cluster://shop:p%40ss@{seeds}")
    try:
        whoami = good.acl_whoami(target_nodes=good.ALL_NODES)
        assert len(whoami) == 6 and {str(name) for name in whoami.values()} == {"shop"}
    finally:
        good.close()
    ready = clients.async_stock_redis_at(f"redis+cluster://shop:p%40ss@{seeds}")
    assert isinstance(ready, redis.asyncio.cluster.RedisCluster)
    await ready.initialize()
    whoami = await ready.acl_whoami(target_nodes=ready.ALL_NODES)
    assert len(whoami) == 6 and {str(name) for name in whoami.values()} == {"shop"}
    await ready.aclose()
    with pytest.raises(redis.ConnectionError, match="invalid username-password"):
        clients.stock_redis_at(f"redis+cluster://shop:wrong@{seeds}")
