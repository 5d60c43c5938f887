"""`flashsale sweep`: re-publish reservations that no worker persisted in time.

A reservation sits in its sale's outbox from the moment the reserve script accepts it
until a worker has it in SQL. If the publish was lost (the API died right after the
script, or the broker was down), the entry grows old and sweep hands it to Celery again.
Persisting is idempotent, so a reservation published twice still makes one order."""

from __future__ import annotations

import logging

import redis
from sqlalchemy.orm import Session, sessionmaker

from flashsale.handoff import ORDERS_PER_MESSAGE, persist_message
from flashsale.sales import sale_names
from flashsale.stock import Stock

log = logging.getLogger(__name__)

PAGE = 1000
DEFAULT_MAX_BACKLOG = 1000


def sweep(
    sessions: sessionmaker[Session],
    stock: Stock,
    broker_client: redis.Redis,
    queue: str,
    older_than_seconds: float,
    max_backlog: int = DEFAULT_MAX_BACKLOG,
) -> int:
    """Publish every outbox entry older than the threshold, many to a message; returns
    how many entries. Units lent between a sale's segments whose borrower went away are
    credited and settled first (flashsale/stock/segments.py).

    A re-published entry counts as new again (its outbox time becomes now), so one entry
    is handed out at most once per threshold. And while the workers are behind (more than
    `max_backlog` messages wait in the queue), an old entry is most likely still waiting
    there: re-publishing the backlog would only multiply it, so the sweep waits."""
    settle_loans(sessions, stock)
    waiting = int(broker_client.llen(queue))
    if waiting > max_backlog:
        log.info("sweep: %d messages wait for the workers; not re-publishing yet", waiting)
        return 0
    published = 0
    for sale in sale_names(sessions):
        for segment in stock.segment_names(sale):
            published += _republish(stock, broker_client, queue, segment, older_than_seconds)
    return published


def _republish(
    stock: Stock, broker_client: redis.Redis, queue: str, segment: str, older_than_seconds: float
) -> int:
    stale = stock.stale_reservations(segment, int(older_than_seconds * 1000))
    for start in range(0, len(stale), PAGE):
        page = stale[start : start + PAGE]
        stock.mark_handed_out(segment, page)
        pipe = broker_client.pipeline(transaction=False)
        for first in range(0, len(page), ORDERS_PER_MESSAGE):
            chunk = page[first : first + ORDERS_PER_MESSAGE]
            pipe.lpush(queue, persist_message(segment, chunk, queue))
        pipe.execute()
    if stale:
        log.info("sweep: re-published %d reservations of sale %s", len(stale), segment)
    return len(stale)


def settle_loans(sessions: sessionmaker[Session], stock: Stock) -> int:
    """Credit and settle units lent between segments whose borrower went away; returns
    how many loans."""
    settled = 0
    for sale in sale_names(sessions):
        found = stock.settle_stale_loans(sale)
        if found:
            log.info("sweep: settled %d loans between segments of sale %s", found, sale)
        settled += found
    return settled
