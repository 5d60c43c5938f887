"""Borrowing: units for a shopper's home segment from the sale's other segments.

A purchase its home segment is short of borrows from the segments that earlier answers,
loans and reads showed richest (lend.lua moves the units into a loan the home segment
credits once, in the same call that decides the purchase again). When those are empty,
every segment is read at once, the read shared by the borrowers of that moment; no unit
anywhere means sold out. Credited loans are settled in the background, those of one
moment together; a borrower that dies leaves its loans to the sweep (store.py)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import redis

from flashsale.stock.calls import Loan
from flashsale.stock.keys import SaleKeys
from flashsale.stock.link import Link, Unavailable
from flashsale.stock.segments import sale_of, segment_names
from flashsale.stock.wire import pack

log = logging.getLogger(__name__)

# Loans tried from what earlier answers showed before reading every segment afresh.
CACHED_TRIES = 2


class Borrowing:
    def __init__(self, link: Link) -> None:
        self._link = link
        self.levels: dict[str, int] = {}  # segment -> units left, as last seen
        # sale -> (when it started, the read of every segment's units): a crowd short of
        # units at the same moment shares one read.
        self._reads: dict[str, tuple[float, asyncio.Future[dict[int, int]]]] = {}
        self._to_settle: dict[str, list[str]] = {}  # lender segment -> credited loan ids

    async def borrow(
        self, sale: str, count: int, index: int, need: int, since: float
    ) -> tuple[list[Loan], int]:
        """Loans covering `need` units for segment `index`, richest segments first, as far
        as units are found; and the home segment's units when they were read afresh. `since`
        is when the home segment's answer arrived: a read of the levels from before it is
        not trusted."""
        names = segment_names(sale, count)
        tried, fresh, home_level = {index}, False, 0
        loans: list[Loan] = []
        cached_tries = 0
        while need > 0:
            # What every answer, loan and read of this process showed last, shared by all
            # its borrowers: one that finds a segment empty spares the others the call.
            levels = [self.levels.get(name, 0) for name in names]
            candidates = sorted(
                (k for k in range(count) if k not in tried and levels[k] > 0),
                key=lambda k: -levels[k],
            )
            if not candidates or (not fresh and cached_tries >= CACHED_TRIES):
                if fresh:
                    break
                home_level = (await self._read_levels(sale, names, since))[index]
                fresh, tried = True, {index}
                if home_level >= need and not loans:
                    break  # units came back home meanwhile: decide again there
                continue
            lender = candidates[0]
            tried.add(lender)
            cached_tries += 0 if fresh else 1
            loan = await self._lend(sale, names[lender], names[index], need)
            if loan is not None:
                loans.append(loan)
                need -= loan.units
        return loans, home_level

    async def _read_levels(self, sale: str, names: list[str], since: float) -> dict[int, int]:
        """Units for sale in every segment, read after `since`: a read started since then
        is shared, else a new one starts."""
        shared = self._reads.get(sale)
        if shared is None or shared[0] < since:
            shared = self._reads[sale] = (
                time.monotonic(),
                asyncio.ensure_future(self._read(names)),
            )
        return dict(await asyncio.shield(shared[1]))

    async def _read(self, names: list[str]) -> dict[int, int]:
        """Units for sale in every segment, one write per master; none while the sale is
        respread (its units are counted afresh then, and none may be called sold out)."""
        reads = [(names[0], pack("HGET", SaleKeys(names[0]).meta, "moving"))]
        reads += [(name, pack("GET", SaleKeys(name).stock)) for name in names]
        moving, *levels = await self._link.read(reads)
        if moving == b"1":
            raise Unavailable(f"sale {sale_of(names[0])} is being respread")
        for name, left in zip(names, levels, strict=True):
            self.levels[name] = int(left or 0)
        return {k: int(left or 0) for k, left in enumerate(levels)}

    async def _lend(self, sale: str, lender: str, borrower: str, units: int) -> Loan | None:
        name = lender
        k = SaleKeys(name)
        loan_id = uuid.uuid4().hex
        node = self._link.node_name(name)
        lent, left, now, epoch = await self._link.script_call(
            "lend",
            name,
            [k.meta, k.stock, k.loans],
            [loan_id, borrower, units, self._link.deadline(node)],
        )
        if int(lent) < 0:
            raise Unavailable(f"sale {sale} is being respread")
        self._link.learn_clock(node, int(now))
        self.levels[name] = int(left)
        return Loan(loan_id, name, int(lent), int(epoch)) if int(lent) else None

    def settle_soon(self, loans: list[Loan]) -> None:
        """Settle credited loans in the background, those of one moment together."""
        start = not self._to_settle
        for loan in loans:
            self._to_settle.setdefault(loan.lender, []).append(loan.loan_id)
        if start:
            self._link.background(self._settle())

    async def _settle(self) -> None:
        await asyncio.sleep(0)  # gather the loans of this moment
        batch, self._to_settle = self._to_settle, {}
        try:
            for lender, ids in batch.items():
                await self._link.script_call("settle", lender, [SaleKeys(lender).loans], ids)
        except redis.RedisError as exc:  # the sweep settles what is left
            log.info("loans left for the sweep to settle: %r", exc)
