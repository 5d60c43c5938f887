"""Celery tasks: thin wrappers that hand ids to the order logic and declare retries."""

from __future__ import annotations

import logging
from functools import cache

import redis
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.engine import session_factory
from flashsale.orders import persist_reservation
from flashsale.settings import get_settings
from flashsale.stock import Stock
from flashsale.worker.app import app
from flashsale.worker.message import PERSIST_TASK

log = logging.getLogger(__name__)


@cache
def _sessions() -> sessionmaker[Session]:
    return session_factory(get_settings().require_database_url())


@cache
def _stock() -> Stock:
    return Stock(redis.Redis.from_url(get_settings().require_redis_url()))


@app.task(
    name=PERSIST_TASK,
    autoretry_for=(OperationalError, DBAPIError, redis.ConnectionError, redis.TimeoutError),
    retry_backoff=True,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=None,
)
def persist_order(sale: str, order_id: str) -> str | None:
    status = persist_reservation(_sessions(), _stock(), sale, order_id)
    if status is None:
        log.warning("reservation %s of sale %s is not in Redis; nothing to persist", order_id, sale)
    return status
