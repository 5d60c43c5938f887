"""The sale over time: stock figures from Redis and order counts from SQL, sampled."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.models import Order
from flashsale.stock import AsyncStock


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    remaining: int
    reserved: int  # accepted, on its way to SQL
    live: int  # in live orders (pending payment or paid)
    orders: int  # order rows in SQL, any status
    paid: int
    expired: int
    returned: int  # expired orders whose units are back in stock


@dataclass
class Timeline:
    sale: str
    total: int
    started: float
    samples: list[Sample] = field(default_factory=list)

    @property
    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None


def order_counts(sessions: sessionmaker[Session], sale: str) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(
            select(Order.status, func.count()).where(Order.sale == sale).group_by(Order.status)
        ).all()
    return {str(status): int(count) for status, count in rows}


async def sample_once(
    timeline: Timeline, stock: AsyncStock, sessions: sessionmaker[Session]
) -> Sample:
    remaining, inflight, live, returned = await stock.units(timeline.sale)  # one read
    counts = await asyncio.to_thread(order_counts, sessions, timeline.sale)
    sample = Sample(
        at=time.monotonic() - timeline.started,
        remaining=remaining,
        reserved=inflight,
        live=live,
        orders=sum(counts.values()),
        paid=counts.get("paid", 0),
        expired=counts.get("expired", 0),
        returned=returned,
    )
    timeline.samples.append(sample)
    return sample


async def sample_forever(
    timeline: Timeline,
    stock: AsyncStock,
    sessions: sessionmaker[Session],
    every: float = 0.25,
) -> None:
    while True:
        await sample_once(timeline, stock, sessions)
        await asyncio.sleep(every)
