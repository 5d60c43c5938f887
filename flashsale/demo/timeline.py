"""The sale over time: stock figures from Redis and order counts from SQL, sampled.

A sample reads the sale with `AsyncStock.units`: each segment's figures in one MULTI, the
segments one after the other. On a sale of one segment a sample is the sale at one
instant. Over several segments it is not: a unit can be counted twice when it goes back
on sale while the read is under way (an expired order's units returned in a segment
already read, then bought in a segment read later), so the units taken can add up to
more than the stock without any oversell. Nothing else puts a taken unit back on sale
in the demo (a payment changes nothing, a rejected order's units are not put back, loans
move only units for sale; a dead letter's release would, and the demo's orders are all
storable), so a sample whose read saw no return counts at most the units taken at
the instant of its last read. `Timeline.instants` keeps those for the check that no
instant oversold; the chart and the waits use every sample.

With a waiting room, each sample reads the room's figures first (`Stock.room_figures`:
queue length, admitted shoppers, admissions and expiries so far), then the units, and
keeps when the room's read began and ended: the checks of the room's gate
(flashsale/demo/room.py) bound what happened between two reads by those moments."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.models import Order
from flashsale.stock import AsyncStock, Stock


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
    # The waiting room's figures, read just before the units (all 0 without a room).
    waiting: int = 0  # shoppers in the queue
    admitted: int = 0  # admitted, not yet bought
    admissions: int = 0  # shoppers let in so far
    expiries: int = 0  # admissions that ran out unused
    room_read: tuple[float, float] = (0.0, 0.0)  # when the room's read began and ended


@dataclass
class Timeline:
    sale: str
    total: int
    started: float
    samples: list[Sample] = field(default_factory=list)
    segments: int = 1

    @property
    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def instants(self) -> Timeline:
        """The samples that bound the sale's figures at one instant. Every sample of a sale
        of one segment (one MULTI). Over several segments, a sample the next one shows
        no return during: each segment's count of returned orders only grows, so equal
        sums mean that no segment returned a unit between its read in this sample and
        its read in the next, which came after this sample's last read. Then no unit
        went back on sale during this read, and none was counted twice. (Every return
        records its order in the segment's set of returned orders: restore.lua.)"""
        if self.segments == 1:
            return self
        kept = [
            sample
            for sample, after in zip(self.samples, self.samples[1:], strict=False)
            if after.returned == sample.returned
        ]
        return dataclasses.replace(self, samples=kept)


def order_counts(sessions: sessionmaker[Session], sale: str) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(
            select(Order.status, func.count()).where(Order.sale == sale).group_by(Order.status)
        ).all()
    return {str(status): int(count) for status, count in rows}


async def sample_once(
    timeline: Timeline,
    stock: AsyncStock,
    sessions: sessionmaker[Session],
    room: Stock | None = None,
) -> Sample:
    waiting = admitted = admissions = expiries = 0
    began = ended = 0.0
    if room is not None:
        began = time.monotonic() - timeline.started
        read = await asyncio.to_thread(room.room_figures, timeline.sale)
        ended = time.monotonic() - timeline.started
        if read is not None:
            waiting, admitted = read.waiting, read.admitted
            admissions, expiries = read.admissions, read.expiries
    # Each segment in one MULTI, the segments one after another (see the module's doc).
    remaining, inflight, live, returned = await stock.units(timeline.sale)
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
        waiting=waiting,
        admitted=admitted,
        admissions=admissions,
        expiries=expiries,
        room_read=(began, ended),
    )
    timeline.samples.append(sample)
    return sample


async def sample_forever(
    timeline: Timeline,
    stock: AsyncStock,
    sessions: sessionmaker[Session],
    every: float = 0.25,
    room: Stock | None = None,
) -> None:
    while True:
        await sample_once(timeline, stock, sessions, room)
        await asyncio.sleep(every)
