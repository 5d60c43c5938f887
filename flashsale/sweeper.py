"""`flashsale sweep`: re-publish reservations that no worker persisted in time.

A reservation sits in its sale's outbox from the moment the reserve script accepts it
until a worker has it in SQL. If the publish was lost (the API died right after the
script, or the broker was down), the entry grows old and sweep hands it to Celery again.
Persisting is idempotent, so a reservation published twice still makes one order."""

from __future__ import annotations

import logging

import redis
from sqlalchemy.orm import Session, sessionmaker

from flashsale.keys import SaleKeys
from flashsale.sales import sale_names
from flashsale.worker.message import ORDERS_PER_MESSAGE, persist_message

log = logging.getLogger(__name__)

PAGE = 1000
DEFAULT_MAX_BACKLOG = 1000


def stale_reservations(client: redis.Redis, sale: str, older_than_ms: int) -> list[str]:
    secs, micros = client.time()
    cutoff = int(secs) * 1000 + int(micros) // 1000 - older_than_ms
    found: list[str] = []
    while True:
        page: list[bytes] = client.zrangebyscore(  # type: ignore[assignment]
            SaleKeys(sale).outbox, "-inf", cutoff, start=len(found), num=PAGE
        )
        found.extend(member.decode() for member in page)
        if len(page) < PAGE:
            return found


def sweep(
    sessions: sessionmaker[Session],
    stock_client: redis.Redis,
    broker_client: redis.Redis,
    queue: str,
    older_than_seconds: float,
    max_backlog: int = DEFAULT_MAX_BACKLOG,
) -> int:
    """Publish every outbox entry older than the threshold, many to a message; returns
    how many entries.

    A re-published entry counts as new again (its outbox time becomes now), so one entry
    is handed out at most once per threshold. And while the workers are behind (more than
    `max_backlog` messages wait in the queue), an old entry is most likely still waiting
    there: re-publishing the backlog would only multiply it, so the sweep waits."""
    waiting = int(broker_client.llen(queue))
    if waiting > max_backlog:
        log.info("sweep: %d messages wait for the workers; not re-publishing yet", waiting)
        return 0
    published = 0
    for sale in sale_names(sessions):
        outbox = SaleKeys(sale).outbox
        stale = stale_reservations(stock_client, sale, int(older_than_seconds * 1000))
        for start in range(0, len(stale), PAGE):
            page = stale[start : start + PAGE]
            secs, micros = stock_client.time()
            now_ms = int(secs) * 1000 + int(micros) // 1000
            # XX: an entry a worker removed meanwhile stays removed.
            stock_client.zadd(outbox, dict.fromkeys(page, now_ms), xx=True)
            pipe = broker_client.pipeline(transaction=False)
            for first in range(0, len(page), ORDERS_PER_MESSAGE):
                chunk = page[first : first + ORDERS_PER_MESSAGE]
                pipe.lpush(queue, persist_message(sale, chunk, queue))
            pipe.execute()
        published += len(stale)
        if stale:
            log.info("sweep: re-published %d reservations of sale %s", len(stale), sale)
    return published
