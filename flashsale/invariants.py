"""The design's invariants, checked by the demo, the benchmark and the fault tests alike:
a sale that oversells, loses or invents a reservation, returns an expired order's units
other than once, or lets a user past the limit fails its check.

Three views of one sale: `check_invariants` after shoppers clicked (what they were
answered, figures sampled during the sale, Redis and SQL at rest); `check_admission` after
HTTP load on a sale no worker drains (Redis alone); `check_persisted` after workers
drained a backlog (Redis and SQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.models import LIVE_STATUSES, Order, Sale
from flashsale.sales import SaleStatus
from flashsale.stock import Stock

# What the contract lets a "Buy" answer with; anything else is a failure.
CONTRACT_OUTCOMES = frozenset(
    {"accepted", "sold_out", "limit_reached", "rate_limited", "not_started", "ended", "paused"}
)


@dataclass(frozen=True)
class Check:
    """One invariant's verdict on one sale (or one benchmark scenario)."""

    name: str
    passed: bool
    detail: str
    figures: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """As the benchmark's results file writes it."""
        return {
            "scenario": self.name,
            "ok": self.passed,
            "detail": self.detail,
            "figures": dict(self.figures),
        }


class Answer(Protocol):
    @property
    def order_id(self) -> str | None: ...


class Answers(Protocol):
    """What the shoppers were answered (the demo's crowd log)."""

    def accepted(self) -> Sequence[Answer]: ...

    def outcomes(self) -> Mapping[str, int]: ...


class Sampled(Protocol):
    @property
    def remaining(self) -> int: ...

    @property
    def reserved(self) -> int: ...

    @property
    def live(self) -> int: ...


class Samples(Protocol):
    """The sale's figures sampled while it ran (the demo's timeline)."""

    @property
    def samples(self) -> Sequence[Sampled]: ...


def check_invariants(
    log: Answers,
    timeline: Samples,
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
    restored_in_redis = stock.returned_orders(sale)
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


def redis_figures(stock: Stock, sale: str) -> dict[str, int]:
    f = stock.sale_in_redis(sale)
    return {
        "total": f.total or 0,
        "remaining": f.remaining,
        "inflight": f.inflight,
        "live": f.live,
        "outbox": f.outbox,
    }


def check_admission(
    stock: Stock, scenario: str, sale: str, accepted: int, in_flight: int = 0
) -> Check:
    """After HTTP load on a fresh sale of one-unit purchases: `accepted` 202 answers were
    counted by the load generator, which stops counting with up to `in_flight` requests
    still on their way (the server may have admitted those)."""
    f = redis_figures(stock, sale)
    taken = f["total"] - f["remaining"]
    problems = []
    if f["remaining"] < 0:
        problems.append(f"remaining is negative ({f['remaining']})")
    if f["inflight"] + f["live"] > f["total"]:
        problems.append("OVERSOLD: more units reserved than the sale has")
    if taken != f["inflight"] + f["live"]:
        problems.append(f"{taken} units left stock but {f['inflight'] + f['live']} are held")
    if not accepted <= taken <= accepted + in_flight:
        problems.append(f"{accepted} answers were 202 but {taken} units were taken")
    if f["outbox"] != f["inflight"]:
        problems.append(f"outbox holds {f['outbox']} reservations, {f['inflight']} in flight")
    f["accepted_202"] = accepted
    return Check(scenario, not problems, "; ".join(problems) or "stock adds up", f)


def check_persisted(
    stock: Stock,
    sessions: sessionmaker[Session],
    scenario: str,
    sale: str,
    order_ids: set[str],
) -> Check:
    """After workers drained a sale's backlog (all of it, or until they were stopped):
    every order row is one of the reservations, once; every reservation is an order or
    still waiting in the outbox; nothing is oversold in Redis or in SQL."""
    f = redis_figures(stock, sale)
    waiting = stock.outbox_members(sale)
    with sessions() as session:
        rows = {
            str(oid)
            for oid in session.scalars(
                select(Order.id).where(Order.sale == sale, Order.status.in_(LIVE_STATUSES))
            )
        }
        all_rows = session.scalar(select(func.count()).where(Order.sale == sale)) or 0
        sql_sale = session.get(Sale, sale)
    problems = []
    if rows - order_ids:
        problems.append(f"{len(rows - order_ids)} orders without a reservation")
    lost = order_ids - rows - waiting
    if lost:
        problems.append(f"{len(lost)} reservations neither in SQL nor in the outbox")
    if all_rows != len(rows):
        problems.append(f"{all_rows - len(rows)} order rows rejected or duplicated")
    if sql_sale is None or sql_sale.live_units > sql_sale.stock:
        problems.append("OVERSOLD in SQL: live units above stock")
    if f["remaining"] + f["inflight"] + f["live"] != f["total"]:
        problems.append("remaining + in flight + live != total")
    f |= {"order_rows": int(all_rows), "reservations": len(order_ids), "waiting": len(waiting)}
    return Check(scenario, not problems, "; ".join(problems) or "one order per reservation", f)
