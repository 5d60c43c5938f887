"""Every client of Redis and PostgreSQL is made here, with one timeout policy per role.

A client that waits for ever on a frozen server takes its component down with it, and one
that gives up too soon turns a slow moment into errors; so each role has one policy, and
no module picks timeouts of its own:

    role        used by                                   socket / connect timeout
    HOT_PATH    the API's reservations (asyncio)          2 s / 2 s, 512 connections
    PUBLISH     the API's task publish to the broker      FLASHSALE_PUBLISH_TIMEOUT_SECONDS
    SERVICE     workers, loops, the operator, the CLI     5 s / 2 s, health checks
    PROBE       /metrics reads, readiness probes          1 s / 1 s
    BULK        the benchmark's loads and measurements    30 s / 2 s

The stock Redis is FLASHSALE_REDIS_URL: one Redis, or a Redis Cluster
(`redis+cluster://h:p,h:p`, read by `settings.parse_cluster_url`), for which the same
policy holds on every node (512 hot-path connections is 512 per node). The sync cluster
client reads the topology (which master serves which slot) as it is made, and has no
health checks of its own: it reconnects, and reads the topology again, when a command
fails. The asyncio cluster client reads it on its first command, or in
`async_stock_redis_ready`, which the API awaits before serving. The broker
(FLASHSALE_BROKER_URL) is always one plain Redis."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any, TypeAlias

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.engine import session_factory
from flashsale.settings import ClusterAddress, Settings, is_cluster_url, parse_cluster_url
from flashsale.stock import AsyncStock, Publish, Stock

StockRedis: TypeAlias = redis.Redis | redis.cluster.RedisCluster
AsyncStockRedis: TypeAlias = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


class Role(Enum):
    HOT_PATH = "hot_path"
    PUBLISH = "publish"
    SERVICE = "service"
    PROBE = "probe"
    BULK = "bulk"


def _policy(role: Role, settings: Settings | None) -> dict[str, Any]:
    if role is Role.HOT_PATH:
        return {
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
            "max_connections": 512,
            "health_check_interval": 30,
        }
    if role is Role.PUBLISH:
        timeout = settings.publish_timeout_seconds if settings else 0.5
        return {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if role is Role.PROBE:
        return {"socket_timeout": 1, "socket_connect_timeout": 1}
    if role is Role.BULK:
        return {"socket_timeout": 30, "socket_connect_timeout": 2}
    return {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 15}


def _cluster_options(
    address: ClusterAddress, role: Role, settings: Settings | None
) -> dict[str, Any]:
    """What both cluster clients are built with besides the seeds: the credentials and TLS
    of the URL, and the policy of `role`, per node."""
    return {
        "username": address.username,
        "password": address.password,
        "ssl": address.tls,
        **_policy(role, settings),
    }


@contextmanager
def _reaching_cluster() -> Iterator[None]:
    """redis-py reports a cluster none of whose seeds answers as a RedisClusterException,
    which is no RedisError; as a ConnectionError, every caller's outage handling takes it."""
    try:
        yield
    except redis.exceptions.RedisClusterException as exc:
        raise redis.ConnectionError(str(exc)) from exc


def _sync_cluster(url: str, role: Role, settings: Settings | None) -> redis.cluster.RedisCluster:
    """The sync client reads the topology as it is made, so this talks to the cluster."""
    address = parse_cluster_url(url)
    options = _cluster_options(address, role, settings)
    options.pop("health_check_interval", None)  # not a sync cluster option (see above)
    nodes = [
        redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]  # redis-py leaves it bare
        for h, p in address.nodes
    ]
    with _reaching_cluster():
        return redis.cluster.RedisCluster(startup_nodes=nodes, **options)


def _async_cluster(
    url: str, role: Role, settings: Settings | None
) -> redis.asyncio.cluster.RedisCluster:
    address = parse_cluster_url(url)
    nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in address.nodes]
    return redis.asyncio.cluster.RedisCluster(
        startup_nodes=nodes, **_cluster_options(address, role, settings)
    )


def _plain(url: str) -> str:
    if is_cluster_url(url):
        raise ValueError("the URL names a Redis Cluster: its client is stock_redis_at")
    return url


def redis_client(url: str, role: Role = Role.SERVICE) -> redis.Redis:
    """A client of one Redis at `url` with the policy of `role` (for servers not named by
    the settings, such as a local platform's own, or one node of a cluster)."""
    return redis.Redis.from_url(_plain(url), **_policy(role, None))


def async_redis_client(url: str, role: Role = Role.SERVICE) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(_plain(url), **_policy(role, None))


def stock_redis_at(
    url: str, role: Role = Role.SERVICE, settings: Settings | None = None
) -> StockRedis:
    """A client of the stock Redis at `url`, one Redis or a Redis Cluster (read from its
    seeds now: a redis.ConnectionError when none answers)."""
    if is_cluster_url(url):
        return _sync_cluster(url, role, settings)
    return redis.Redis.from_url(url, **_policy(role, settings))


def async_stock_redis_at(
    url: str, role: Role = Role.HOT_PATH, settings: Settings | None = None
) -> AsyncStockRedis:
    """`stock_redis_at` for asyncio. A cluster client is not initialised yet: it learns the
    topology on its first command (or `await client.initialize()`)."""
    if is_cluster_url(url):
        return _async_cluster(url, role, settings)
    return redis.asyncio.Redis.from_url(url, **_policy(role, settings))


def stock_redis(settings: Settings, role: Role = Role.SERVICE) -> StockRedis:
    return stock_redis_at(settings.require_redis_url(), role, settings)


def broker_redis(settings: Settings, role: Role = Role.SERVICE) -> redis.Redis:
    return redis.Redis.from_url(settings.require_broker_url(), **_policy(role, settings))


def async_stock_redis(settings: Settings) -> AsyncStockRedis:
    """The hot path's client, not yet initialised if a cluster; an API that serves
    awaits `async_stock_redis_ready` instead."""
    return async_stock_redis_at(settings.require_redis_url(), Role.HOT_PATH, settings)


async def async_stock_redis_ready(settings: Settings) -> AsyncStockRedis:
    """The hot path's client, ready to serve: a cluster client has read the topology
    (which node serves which slot) from its seeds, so the first purchases do not wait for
    it, and a cluster that cannot be reached shows at start-up as a redis.ConnectionError.
    One Redis needs nothing before its first command."""
    client = async_stock_redis(settings)
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        with _reaching_cluster():
            await client.initialize()
    return client


def async_broker_redis(settings: Settings) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(
        settings.require_broker_url(), **_policy(Role.PUBLISH, settings)
    )


def stock(settings: Settings, role: Role = Role.SERVICE) -> Stock:
    """Stock operations on the stock Redis."""
    return Stock(stock_redis(settings, role))


def hot_path_stock(
    settings: Settings,
    client: AsyncStockRedis,
    publish: Publish | None,
    on_call: Any = None,
) -> AsyncStock:
    """The API's batched reservation path, handing off as the settings say."""
    return AsyncStock(
        client,
        queue=settings.queue if settings.script_handoff else "",
        publish=None if settings.script_handoff else publish,
        on_call=on_call,
    )


def database(settings: Settings) -> sessionmaker[Session]:
    """Sessions of the order database (one engine per process and URL)."""
    return database_at(settings.require_database_url())


def database_at(url: str) -> sessionmaker[Session]:
    """Sessions of a database not named by the settings (a local platform's own); the
    engine's pool, timeouts and pre-ping are the same (flashsale/db/engine.py)."""
    return session_factory(url)
