"""`flashsale reap`: expire unpaid orders and return their units to Redis exactly once.

Two steps, each safe to run twice or side by side with another reaper:
1. expire: one UPDATE flips due `pending_payment` orders to `expired` (rows taken with
   SKIP LOCKED, so concurrent reapers split the work) and lowers the sales' live units;
2. return: for every expired order not yet marked `restored_at`, the restore script gives
   the units back, one call per sale for a batch of rows (it remembers order ids, so a
   repeat returns nothing), then the rows are marked.
   A reaper killed between the two leaves rows for the next run to finish."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from flashsale.stock import Stock

log = logging.getLogger(__name__)

EXPIRE_DUE = text(
    """
    WITH due AS (
        SELECT id FROM orders
        WHERE status = 'pending_payment' AND expires_at <= now()
        ORDER BY expires_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE orders AS o SET status = 'expired', expired_at = now()
    FROM due WHERE o.id = due.id
    RETURNING o.sale, o.quantity
    """
)
RELEASE_UNITS = text("UPDATE sales SET live_units = live_units - :units WHERE name = :sale")
UNRESTORED = text(
    """
    SELECT id, sale, user_id, quantity FROM orders
    WHERE status = 'expired' AND restored_at IS NULL
    ORDER BY expired_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
MARK_RESTORED = text("UPDATE orders SET restored_at = now() WHERE id = ANY(:ids)")


@dataclass(frozen=True, slots=True)
class ReapReport:
    expired: int
    restored: int


def expire_due(sessions: sessionmaker[Session], batch_size: int) -> int:
    total = 0
    while True:
        with sessions.begin() as session:
            rows = session.execute(EXPIRE_DUE, {"limit": batch_size}).all()
            units: Counter[str] = Counter()
            for sale, quantity in rows:
                units[sale] += quantity
            # Sorted, so concurrent reapers lock sale rows in the same order.
            for sale in sorted(units):
                session.execute(RELEASE_UNITS, {"units": units[sale], "sale": sale})
        total += len(rows)
        if len(rows) < batch_size:
            return total


def return_units(sessions: sessionmaker[Session], stock: Stock, batch_size: int) -> int:
    returned = 0
    while True:
        with sessions.begin() as session:
            rows = session.execute(UNRESTORED, {"limit": batch_size}).all()
            # One restore call per sale, not per order: the row locks are held meanwhile.
            by_sale: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
            for order_id, sale, user, quantity in rows:
                by_sale[sale].append((str(order_id), user, quantity))
            for sale, orders in by_sale.items():
                returned += stock.restore_many(sale, orders).count(1)
            if rows:
                session.execute(MARK_RESTORED, {"ids": [row[0] for row in rows]})
        if len(rows) < batch_size:
            return returned


def reap(sessions: sessionmaker[Session], stock: Stock, batch_size: int = 500) -> ReapReport:
    report = ReapReport(
        expired=expire_due(sessions, batch_size),
        restored=return_units(sessions, stock, batch_size),
    )
    if report.expired or report.restored:
        log.info(
            "reaped: %d orders expired, %d returned to stock", *(report.expired, report.restored)
        )
    return report
