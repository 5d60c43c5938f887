"""The design's invariants, checked after every benchmark run: a run that oversells, or
loses or invents a reservation, is a failed run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.models import LIVE_STATUSES, Order, Sale
from flashsale.keys import SaleKeys


@dataclass
class Check:
    scenario: str
    ok: bool
    detail: str
    figures: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def redis_figures(client: redis.Redis, sale: str) -> dict[str, int]:
    k = SaleKeys(sale)
    pipe = client.pipeline(transaction=True)
    pipe.hmget(k.meta, "total", "inflight", "live")
    pipe.get(k.stock)
    pipe.zcard(k.outbox)
    (total, inflight, live), remaining, outbox = pipe.execute()
    return {
        "total": int(total or 0),
        "remaining": int(remaining or 0),
        "inflight": int(inflight or 0),
        "live": int(live or 0),
        "outbox": int(outbox),
    }


def check_admission(
    client: redis.Redis, scenario: str, sale: str, accepted: int, in_flight: int = 0
) -> Check:
    """After HTTP load on a fresh sale of one-unit purchases: `accepted` 202 answers were
    counted by the load generator, which stops counting with up to `in_flight` requests
    still on their way (the server may have admitted those)."""
    f = redis_figures(client, sale)
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
    client: redis.Redis,
    sessions: sessionmaker[Session],
    scenario: str,
    sale: str,
    order_ids: set[str],
) -> Check:
    """After workers drained a sale's backlog (all of it, or until they were stopped):
    every order row is one of the reservations, once; every reservation is an order or
    still waiting in the outbox; nothing is oversold in Redis or in SQL."""
    f = redis_figures(client, sale)
    members: list[bytes] = client.zrange(SaleKeys(sale).outbox, 0, -1)  # type: ignore[assignment]
    waiting = {m.decode() for m in members}
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
