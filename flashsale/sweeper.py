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
from flashsale.worker.message import persist_message

log = logging.getLogger(__name__)

PAGE = 1000


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
) -> int:
    """Publish every outbox entry older than the threshold; returns how many."""
    published = 0
    for sale in sale_names(sessions):
        stale = stale_reservations(stock_client, sale, int(older_than_seconds * 1000))
        for start in range(0, len(stale), PAGE):
            pipe = broker_client.pipeline(transaction=False)
            for order_id in stale[start : start + PAGE]:
                pipe.lpush(queue, persist_message(sale, order_id, queue))
            pipe.execute()
        published += len(stale)
        if stale:
            log.info("sweep: re-published %d reservations of sale %s", len(stale), sale)
    return published
