"""The design's invariants, checked against what the crowd saw, Redis and SQL."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.models import Order
from flashsale.demo.crowd import CrowdLog
from flashsale.demo.timeline import Timeline
from flashsale.keys import SaleKeys
from flashsale.sales import SaleStatus
from flashsale.stock import Stock

# What the contract lets a "Buy" answer with; anything else is a failure.
CONTRACT_OUTCOMES = frozenset(
    {"accepted", "sold_out", "limit_reached", "rate_limited", "not_started", "ended", "paused"}
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


def check_invariants(
    log: CrowdLog,
    timeline: Timeline,
    status: SaleStatus,
    sessions: sessionmaker[Session],
    stock: Stock,
    per_user_limit: int,
) -> list[Check]:
    sale, figures = status.name, status.stock
    with sessions() as session:
        rows = session.execute(
            select(Order.id, Order.status, Order.quantity, Order.restored_at).where(
                Order.sale == sale
            )
        ).all()
        heaviest = session.execute(
            select(Order.user_id, func.sum(Order.quantity).label("units"))
            .where(Order.sale == sale, Order.status.in_(["pending_payment", "paid"]))
            .group_by(Order.user_id)
            .order_by(func.sum(Order.quantity).desc())
            .limit(1)
        ).first()
    order_ids = {str(row.id) for row in rows}
    expired = [row for row in rows if row.status == "expired"]
    members = stock.client.smembers(SaleKeys(sale).restored)
    restored_in_redis = {m.decode() if isinstance(m, bytes) else m for m in members}
    accepted_ids = [c.order_id for c in log.accepted() if c.order_id]

    in_orders = figures.paid + figures.pending_payment + figures.reserved
    peak = max((s.reserved + s.live for s in timeline.samples), default=0)
    lowest = min((s.remaining for s in timeline.samples), default=0)
    strange = sorted(set(log.outcomes()) - CONTRACT_OUTCOMES)
    unreturned = [row for row in expired if row.restored_at is None]
    expired_ids = {str(row.id) for row in expired}
    held = int(heaviest.units) if heaviest else 0
    return [
        Check(
            "no oversell at any instant",
            peak <= figures.total and lowest >= 0 and in_orders <= figures.total,
            f"at most {peak} of {figures.total} units taken in {len(timeline.samples)} "
            f"samples; lowest remaining {lowest}",
        ),
        Check(
            "stock adds up at rest",
            in_orders + figures.remaining == figures.total,
            f"paid {figures.paid} + pending {figures.pending_payment} + reserved "
            f"{figures.reserved} + remaining {figures.remaining} = "
            f"{in_orders + figures.remaining} (total {figures.total})",
        ),
        Check(
            "every 202 became exactly one order",
            len(accepted_ids) == len(set(accepted_ids)) and set(accepted_ids) == order_ids,
            f"{len(accepted_ids)} accepted, {len(order_ids)} order rows, "
            f"{len(set(accepted_ids) ^ order_ids)} unmatched",
        ),
        Check(
            "every expired order returned its units once",
            not unreturned and restored_in_redis == expired_ids,
            f"{len(expired)} expired, {len(restored_in_redis)} returned, "
            f"{len(unreturned)} not returned",
        ),
        Check(
            "no user above the per-user limit",
            held <= per_user_limit,
            f"most units one user holds in live orders: {held} (limit {per_user_limit})",
        ),
        Check(
            "only answers the contract allows",
            not strange,
            "all answers were 202, 409 or 429" if not strange else f"unexpected: {strange}",
        ),
    ]
