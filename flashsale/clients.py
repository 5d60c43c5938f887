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

The stock Redis is FLASHSALE_REDIS_URL, the broker FLASHSALE_BROKER_URL (the stock Redis
when unset). A Redis Cluster client would plug in here, behind the same roles."""

from __future__ import annotations

from enum import Enum
from typing import Any

import redis
import redis.asyncio
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.engine import session_factory
from flashsale.settings import Settings
from flashsale.stock import AsyncStock, Publish, Stock


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


def redis_client(url: str, role: Role = Role.SERVICE) -> redis.Redis:
    """A Redis client for `url` with the policy of `role` (for servers not named by the
    settings, such as a local platform's own)."""
    return redis.Redis.from_url(url, **_policy(role, None))


def async_redis_client(url: str, role: Role = Role.SERVICE) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(url, **_policy(role, None))


def stock_redis(settings: Settings, role: Role = Role.SERVICE) -> redis.Redis:
    return redis.Redis.from_url(settings.require_redis_url(), **_policy(role, settings))


def broker_redis(settings: Settings, role: Role = Role.SERVICE) -> redis.Redis:
    url = settings.effective_broker_url or settings.require_redis_url()
    return redis.Redis.from_url(url, **_policy(role, settings))


def async_stock_redis(settings: Settings) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(
        settings.require_redis_url(), **_policy(Role.HOT_PATH, settings)
    )


def async_broker_redis(settings: Settings) -> redis.asyncio.Redis:
    url = settings.effective_broker_url or settings.require_redis_url()
    return redis.asyncio.Redis.from_url(url, **_policy(Role.PUBLISH, settings))


def stock(settings: Settings, role: Role = Role.SERVICE) -> Stock:
    """Stock operations on the stock Redis."""
    return Stock(stock_redis(settings, role))


def hot_path_stock(
    settings: Settings,
    client: redis.asyncio.Redis,
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
