"""Celery tasks: thin wrappers that pace the work, hand ids to the order logic and
decide retries.

Retries are bounded and each is logged: while PostgreSQL or Redis is away a task retries
with backoff up to MAX_RETRIES times, then gives up, leaving its reservations in the
outbox, where the sweep hands them out again once they are old. What no retry can help
(arguments no task takes, a message nobody can read) is put aside as a dead letter."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from functools import cache
from typing import Any

import redis
from celery import Task
from celery.signals import celeryd_after_setup, task_rejected, task_unknown
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from flashsale import clients
from flashsale.deadletters import bury_message
from flashsale.handoff import (
    BURY_TASK,
    ORDERS_PER_MESSAGE,
    PERSIST_ONE_TASK,
    PERSIST_TASK,
)
from flashsale.persist import persist_reservations
from flashsale.settings import get_settings
from flashsale.spec import is_valid_sale_name
from flashsale.stock import Stock, sale_of
from flashsale.worker.app import app
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


# PostgreSQL or Redis away: worth trying again a little later.
TRANSIENT = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)
# About four minutes of retries (1, 2, 4 ... 30 s); after that the sweep takes over.
MAX_RETRIES = 12
BACKOFF_MAX = 30.0


def _persist_task(name: str) -> Callable[[Callable[..., Any]], Task[Any, Any]]:
    return app.task(name=name, bind=True, max_retries=MAX_RETRIES)


@cache
def _sessions() -> sessionmaker[Session]:
    return clients.database(get_settings())


@cache
def _stock() -> Stock:
    return clients.stock(get_settings())


def _names_a_segment(name: str) -> bool:
    try:
        return is_valid_sale_name(sale_of(name))
    except ValueError:
        return False


def malformed(sale: object, order_ids: object) -> str | None:
    """Why a persist message's arguments are not what any API wrote, or None."""
    if not isinstance(sale, str) or not _names_a_segment(sale):
        return "the sale is not a sale name"
    if not isinstance(order_ids, list) or len(order_ids) > 4 * ORDERS_PER_MESSAGE:
        return "the order ids are not a list of at most a message's size"
    if not all(isinstance(oid, str) and 0 < len(oid) <= 64 for oid in order_ids):
        return "an order id is not a short string"
    return None


def _retry_or_give_up(task: Task[Any, Any], exc: Exception, what: str, then: str) -> None:
    """Retry `task` with backoff, logging each retry; after MAX_RETRIES, log `then` and
    return, so the message is acknowledged."""
    tries = task.request.retries
    if tries >= MAX_RETRIES:
        log.warning("giving up on %s after %d retries (%s); %s", what, tries, exc, then)
        return
    countdown = min(BACKOFF_MAX, 2.0**tries)
    log.warning(
        "%s failed (%s); retry %d of %d in %.0f s", what, exc, tries + 1, MAX_RETRIES, countdown
    )
    raise task.retry(exc=exc, countdown=countdown)


@cache
def _pace() -> TokenBucket:
    settings = get_settings()
    pace = WorkerPace(clients.broker_redis(settings), settings.orders_per_second)
    return TokenBucket(pace.per_second, state=_bucket_state)


@_persist_task(PERSIST_TASK)
def persist_orders(self: Task[Any, Any], sale: str, order_ids: list[str]) -> dict[str, int]:
    """Persist reservations of one sale in one transaction, at the worker's pace;
    returns how many orders ended in each status."""
    try:
        problem = malformed(sale, order_ids)
        if problem is not None:
            bury_message(_sessions(), problem, {"task": PERSIST_TASK, "args": [sale, order_ids]})
            return {"dead_letter": 1}
        wanted = list(dict.fromkeys(order_ids))
        _pace().take(len(wanted))
        statuses = persist_reservations(_sessions(), _stock(), sale, wanted)
    except TRANSIENT as exc:
        _retry_or_give_up(
            self,
            exc,
            f"persisting {len(order_ids)} reservations of sale {sale}",
            "they stay in the outbox and the sweep hands them out again",
        )
        return {}
    if len(statuses) < len(wanted):
        log.warning(
            "%d reservations of sale %s are not in Redis; nothing to persist for them",
            len(wanted) - len(statuses),
            sale,
        )
    return dict(Counter(statuses.values()))


@app.task(name=PERSIST_ONE_TASK)
def persist_order(sale: str, order_id: str) -> dict[str, int]:
    """The message format of earlier releases: one reservation."""
    result: dict[str, int] = persist_orders(sale, [order_id])
    return result


@app.task(name=BURY_TASK, bind=True, max_retries=MAX_RETRIES)
def bury_unreadable(self: Task[Any, Any], reason: str, payload: str) -> None:
    """Record what the transport could not read as a task message (see transport.py)."""
    try:
        bury_message(_sessions(), reason, payload)
    except TRANSIENT as exc:
        _retry_or_give_up(self, exc, "recording a dead letter", f"only this line tells: {reason}")


@task_unknown.connect
def _bury_unknown(name: str, message: Any, **_: Any) -> None:
    _bury_quietly(f"no task named {name!r}", getattr(message, "body", message))


@task_rejected.connect
def _bury_rejected(message: Any, **_: Any) -> None:
    _bury_quietly("a message of no known kind", getattr(message, "body", message))


def _bury_quietly(reason: str, payload: object) -> None:
    """In the worker's consumer: a dead letter if PostgreSQL takes it, else a log line
    (Celery has logged and dropped the message either way)."""
    try:
        bury_message(_sessions(), reason, payload)
    except Exception as exc:  # noqa: BLE001 - never stop the consumer over a record
        log.warning("dead letter not recorded (%s): %s", exc, reason)
