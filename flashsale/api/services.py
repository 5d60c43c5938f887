"""What the API holds for its lifetime: clients, scripts, the token verifier."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from flashsale import clients
from flashsale.api.auth import TokenVerifier
from flashsale.api.metrics import HANDOFF_FAILURES, RESERVE_CALL_PURCHASES
from flashsale.api.soldout import SoldOutFlags
from flashsale.figures import CachedFigures, FiguresReader, PlatformCollector
from flashsale.handoff import persist_message
from flashsale.orders import RESERVED, UnknownOrder, get_order
from flashsale.settings import Settings
from flashsale.stock import AsyncStock, Publish, Stock

log = logging.getLogger(__name__)


def publisher(broker: AsyncRedis, queue: str) -> Publish:
    """The 'publish' handoff: push the task message of accepted reservations after the
    script; should the broker fail, they wait in the outbox for the sweep."""

    async def publish(sale: str, order_ids: list[str]) -> None:
        try:
            await broker.lpush(queue, persist_message(sale, order_ids, queue))
        except (redis.RedisError, OSError) as exc:
            HANDOFF_FAILURES.inc()
            log.warning("task publish failed, left for sweep: %s", exc)

    return publish


@dataclass
class Services:
    settings: Settings
    verifier: TokenVerifier
    redis: clients.AsyncStockRedis  # stock (one Redis or a Redis Cluster); the hot path
    broker: AsyncRedis  # Celery broker, for the 'publish' handoff and readiness
    fast_stock: AsyncStock
    stock: Stock  # sync client for the threadpool endpoints
    sessions: sessionmaker[Session]
    sold_out: SoldOutFlags  # local, short-lived: spares Redis the late clicks
    figures: FiguresReader  # clients of its own, with short timeouts, for /metrics
    platform_figures: PlatformCollector

    @classmethod
    def build(cls, settings: Settings) -> Services:
        aredis = clients.async_stock_redis(settings)
        same = (settings.effective_broker_url or settings.redis_url) == settings.redis_url
        # With a cluster the broker is always a Redis of its own (the settings insist).
        broker = (
            aredis
            if same and isinstance(aredis, AsyncRedis)
            else clients.async_broker_redis(settings)
        )
        sessions = clients.database(settings)
        figures = FiguresReader.from_settings(settings, sessions)
        return cls(
            settings=settings,
            verifier=TokenVerifier(
                settings.require_jwt_secret(),
                settings.token_cache_size,
                settings.max_token_bytes,
                settings.max_token_lifetime_seconds,
            ),
            redis=aredis,
            broker=broker,
            figures=figures,
            platform_figures=PlatformCollector(CachedFigures(figures.read)),
            fast_stock=clients.hot_path_stock(
                settings, aredis, publisher(broker, settings.queue), RESERVE_CALL_PURCHASES.observe
            ),
            stock=clients.stock(settings),
            sessions=sessions,
            sold_out=SoldOutFlags(settings.sold_out_cache_seconds),
        )

    async def order_status(self, user: str, order_id: str) -> str:
        """The status of one of the user's orders now; `reserved` when it cannot be read
        (the answer that was true when the order was made)."""
        try:
            view = await run_in_threadpool(get_order, self.sessions, self.stock, user, order_id)
        except (UnknownOrder, redis.RedisError, DBAPIError) as exc:
            log.warning("status of order %s unreadable, answering reserved: %r", order_id, exc)
            return RESERVED
        return view.status

    async def close(self) -> None:
        await self.redis.aclose()
        if self.broker is not self.redis:
            await self.broker.aclose()
        self.stock.close()
        self.figures.close()
