"""Celery tasks: thin wrappers that pace the work, hand ids to the order logic and
declare retries."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from functools import cache
from typing import Any

import redis
from celery import Task
from celery.signals import celeryd_after_setup
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.engine import session_factory
from flashsale.persist import persist_reservations
from flashsale.settings import get_settings
from flashsale.stock import Stock
from flashsale.worker.app import app
from flashsale.worker.message import PERSIST_ONE_TASK, PERSIST_TASK
from flashsale.worker.pacing import BucketState, TokenBucket, WorkerPace

log = logging.getLogger(__name__)

_bucket_state = BucketState()  # this worker's pace: shared by its pool's processes


@celeryd_after_setup.connect
def _share_the_pace(sender: str, instance: Any, **_: Any) -> None:
    """Runs in the worker's main process before a prefork pool forks: its children
    inherit one bucket in shared memory."""
    global _bucket_state
    if getattr(instance.pool_cls, "__module__", "").endswith("prefork"):
        _bucket_state = BucketState(shared=True)


def _persist_task(name: str) -> Callable[[Callable[..., Any]], Task[Any, Any]]:
    """A task that retries, with backoff, for as long as PostgreSQL or Redis are away."""
    return app.task(
        name=name,
        autoretry_for=(OperationalError, DBAPIError, redis.ConnectionError, redis.TimeoutError),
        retry_backoff=True,
        retry_backoff_max=30,
        retry_jitter=True,
        max_retries=None,
    )


@cache
def _sessions() -> sessionmaker[Session]:
    return session_factory(get_settings().require_database_url())


@cache
def _stock() -> Stock:
    return Stock(redis.Redis.from_url(get_settings().require_redis_url()))


@cache
def _pace() -> TokenBucket:
    settings = get_settings()
    broker = redis.Redis.from_url(settings.effective_broker_url or settings.require_redis_url())
    pace = WorkerPace(broker, settings.orders_per_second)
    return TokenBucket(pace.per_second, state=_bucket_state)


@_persist_task(PERSIST_TASK)
def persist_orders(sale: str, order_ids: list[str]) -> dict[str, int]:
    """Persist reservations of one sale in one transaction, at the worker's pace;
    returns how many orders ended in each status."""
    wanted = list(dict.fromkeys(order_ids))
    _pace().take(len(wanted))
    statuses = persist_reservations(_sessions(), _stock(), sale, wanted)
    if len(statuses) < len(wanted):
        log.warning(
            "%d reservations of sale %s are not in Redis; nothing to persist for them",
            len(wanted) - len(statuses),
            sale,
        )
    return dict(Counter(statuses.values()))


@_persist_task(PERSIST_ONE_TASK)
def persist_order(sale: str, order_id: str) -> dict[str, int]:
    """The message format of earlier releases: one reservation."""
    result: dict[str, int] = persist_orders(sale, [order_id])
    return result
