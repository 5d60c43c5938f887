"""Reads of a sale's stock figures, for everything but the hot path: status, figures,
the sweep, the workers and the orders API. A sale of many segments is read segment by
segment and summed: each segment's figures are read atomically (one slot, one MULTI),
the sum is not, and units lent between segments count as for sale while they travel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import RedisCluster

from flashsale.stock.calls import text_of
from flashsale.stock.keys import SaleKeys
from flashsale.stock.segments import home, segment_name, segment_names

PAGE = 1000
RESERVATION_FIELDS = ("user", "qty", "reserved_at", "expires_at", "state")
# A client of one Redis, or of a Redis Cluster (which routes each key to its slot's master).
SyncRedis = redis.Redis | RedisCluster


@dataclass(frozen=True, slots=True)
class SaleInRedis:
    """A sale's figures in Redis (total None: Redis has no such sale)."""

    total: int | None
    remaining: int  # for sale, including units lent between segments
    inflight: int
    live: int
    outbox: int
    closed: bool
    now_ms: int
    segments: int = 1
    moving: bool = False  # being respread: purchases wait until it is loaded afresh

    @property
    def exists(self) -> bool:
        return self.total is not None


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits for the workers in one sale: outbox entries and the oldest one's age."""

    remaining: int
    outbox: int
    oldest_age_seconds: float
    segments: int = 1
    loans: int = 0  # units lent between segments, not yet settled
    oldest_loan_age_seconds: float = 0.0  # beyond a minute: the sweep is not settling them


def _ms(secs: Any, micros: Any) -> int:
    return int(secs) * 1000 + int(micros) // 1000


def loans_of(loans: Mapping[bytes, bytes]) -> list[tuple[str, str, int]]:
    """(borrowing segment, loan id, units) of a segment's open loans, from its loans hash
    ("<borrowing segment>|<units>|<lent at>|<epoch>"). A loan counts as for sale until its
    borrower credited it (reserve.lua records the receipt); from then on the borrower's
    stock holds its units."""
    found = []
    for loan_id, value in loans.items():
        to, units, _, _ = value.split(b"|")
        found.append((text_of(to), text_of(loan_id), int(units)))
    return found


class SaleReads:
    """The read side of Stock (flashsale/stock/store.py)."""

    _client: SyncRedis

    def now_ms(self) -> int:
        return _ms(*self._client.time())

    def segments(self, sale: str) -> int:
        """How many segments the sale's stock is spread over (1 when Redis has no sale)."""
        return int(self._client.hget(SaleKeys(sale).meta, "segments") or 1)

    def segment_of(self, sale: str, user: str) -> str:
        """The segment holding `user`'s state (and reservations) in `sale`."""
        count = self.segments(sale)
        return segment_name(sale, home(user, count), count)

    def segment_names(self, sale: str) -> list[str]:
        return segment_names(sale, self.segments(sale))

    def _segments_of(self, sales: Sequence[str]) -> dict[str, list[str]]:
        pipe = self._client.pipeline(transaction=False)
        for sale in sales:
            pipe.hget(SaleKeys(sale).meta, "segments")
        counts = pipe.execute() if sales else []
        return {s: segment_names(s, int(n or 1)) for s, n in zip(sales, counts, strict=True)}

    def _uncredited(self, travelling: Sequence[tuple[str, str, int]]) -> int:
        """Units of these loans that their borrowers have not credited yet."""
        if not travelling:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for borrower, loan_id, _ in travelling:
            pipe.zscore(SaleKeys(borrower).received, loan_id)
        receipts = pipe.execute()
        return sum(u for (_, _, u), r in zip(travelling, receipts, strict=True) if r is None)

    def has_sale(self, sale: str) -> bool:
        return bool(self._client.exists(SaleKeys(sale).meta))

    def remaining(self, sale: str) -> int:
        """Units for sale over every segment, those travelling between segments included."""
        pipe = self._client.pipeline(transaction=False)
        for name in self.segment_names(sale):
            pipe.get(SaleKeys(name).stock)
            pipe.hgetall(SaleKeys(name).loans)
        replies = pipe.execute()
        travelling = [loan for loans in replies[1::2] for loan in loans_of(loans)]
        return sum(int(r or 0) for r in replies[0::2]) + self._uncredited(travelling)

    def segment_remaining(self, segment: str) -> int:
        return int(self._client.get(SaleKeys(segment).stock) or 0)

    def outbox_size(self, sale: str) -> int:
        pipe = self._client.pipeline(transaction=False)
        for name in self.segment_names(sale):
            pipe.zcard(SaleKeys(name).outbox)
        return sum(int(n) for n in pipe.execute())

    def outbox_members(self, sale: str) -> set[str]:
        """Ids of the reservations not yet in SQL."""
        pipe = self._client.pipeline(transaction=False)
        for name in self.segment_names(sale):
            pipe.zrange(SaleKeys(name).outbox, 0, -1)
        return {text_of(m) for members in pipe.execute() for m in members}

    def returned_orders(self, sale: str) -> set[str]:
        """Ids of the orders whose units restore.lua gave back."""
        pipe = self._client.pipeline(transaction=False)
        for name in self.segment_names(sale):
            pipe.smembers(SaleKeys(name).restored)
        return {text_of(m) for members in pipe.execute() for m in members}

    def sale_in_redis(self, sale: str) -> SaleInRedis:
        """The sale's figures, each segment's in one MULTI/EXEC (its keys share a slot,
        and the scripts move units between them in single steps). Redis's clock is read
        just before, on its own: a Redis Cluster refuses TIME in a pipeline."""
        now_ms = self.now_ms()
        names = self.segment_names(sale)
        total: int | None = None
        remaining = inflight = live = outbox = 0
        closed = moving = False
        travelling: list[tuple[str, str, int]] = []
        for name in names:
            keys = SaleKeys(name)
            pipe = self._client.pipeline(transaction=True)
            pipe.hmget(keys.meta, "total", "inflight", "live", "closed", "moving")
            pipe.get(keys.stock)
            pipe.zcard(keys.outbox)
            pipe.hgetall(keys.loans)
            (t, i, v, c, m), r, o, loans = pipe.execute()
            if t is not None:
                total = (total or 0) + int(t)
            remaining += int(r or 0)
            travelling += loans_of(loans)
            inflight += int(i or 0)
            live += int(v or 0)
            outbox += int(o)
            closed = closed or c == b"1"
            moving = moving or m == b"1"
        remaining += self._uncredited(travelling)
        return SaleInRedis(
            total, remaining, inflight, live, outbox, closed, now_ms, len(names), moving
        )

    def backlogs(self, sales: Iterable[str]) -> dict[str, Backlog]:
        """Remaining stock, outbox size and the oldest entry's age of each sale (for the
        platform figures); the clock is read first, on its own, as a Redis Cluster wants."""
        by_sale = self._segments_of(list(sales))
        now_ms = self.now_ms()
        pipe = self._client.pipeline(transaction=False)
        for names in by_sale.values():
            for name in names:
                keys = SaleKeys(name)
                pipe.get(keys.stock)
                pipe.zcard(keys.outbox)
                pipe.zrange(keys.outbox, 0, 0, withscores=True)
                pipe.hgetall(keys.loans)
        replies = iter(pipe.execute())
        found: dict[str, Backlog] = {}
        for sale, names in by_sale.items():
            remaining = outbox = lent = 0
            age = loan_age = 0.0
            for _ in names:
                left, waiting, oldest, loans = (next(replies) for _ in range(4))
                remaining += int(left or 0)
                outbox += int(waiting)
                if oldest:
                    age = max(age, (now_ms - float(oldest[0][1])) / 1000)
                for value in loans.values():
                    _, units, at, _ = value.split(b"|")
                    lent += int(units)
                    loan_age = max(loan_age, (now_ms - int(at)) / 1000)
            found[sale] = Backlog(remaining + lent, outbox, age, len(names), lent, loan_age)
        return found

    def read_reservations(
        self, segment: str, order_ids: Iterable[str]
    ) -> list[tuple[str, list[bytes]]]:
        """(order id, [user, qty, reserved_at, expires_at, state]) of each reservation
        the segment still has, oldest first, in one round trip; unknown ids are left out."""
        wanted = list(dict.fromkeys(order_ids))
        keys = SaleKeys(segment)
        pipe = self._client.pipeline(transaction=False)
        for order_id in wanted:
            pipe.hmget(keys.reservation(order_id), RESERVATION_FIELDS)
        found = [
            (order_id, values)
            for order_id, values in zip(wanted, pipe.execute(), strict=True)
            if values[0] is not None
        ]
        # First come, first served: should stock fall short, the latest ones lose.
        found.sort(key=lambda item: (int(item[1][2]), item[0]))
        return found

    def find_reservation(
        self, sales: Sequence[str], order_id: str
    ) -> tuple[str, dict[bytes, bytes]] | None:
        """The sale and the reservation hash of `order_id`, asking every segment of every
        sale at once (an order id does not name its sale)."""
        segments = [
            (sale, name) for sale, names in self._segments_of(sales).items() for name in names
        ]
        if not segments:
            return None
        pipe = self._client.pipeline(transaction=False)
        for _, name in segments:
            pipe.hgetall(SaleKeys(name).reservation(order_id))
        for (sale, _), raw in zip(segments, pipe.execute(), strict=True):
            if raw:
                return sale, raw
        return None

    def stale_reservations(self, segment: str, older_than_ms: int) -> list[str]:
        """Outbox entries of one segment older than `older_than_ms` (Redis's clock)."""
        cutoff = self.now_ms() - older_than_ms
        found: list[str] = []
        while True:
            page: list[bytes] = self._client.zrangebyscore(  # type: ignore[assignment]
                SaleKeys(segment).outbox, "-inf", cutoff, start=len(found), num=PAGE
            )
            found.extend(text_of(member) for member in page)
            if len(page) < PAGE:
                return found

    def open_loans(self, sale: str) -> list[tuple[str, str, str, int, int, int]]:
        """(lender segment, loan id, borrowing segment, units, lent at ms, epoch) of every
        loan not yet settled."""
        names = self.segment_names(sale)
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(SaleKeys(name).loans)
        found = []
        for name, loans in zip(names, pipe.execute(), strict=True):
            for loan_id, value in loans.items():
                to, units, at, epoch = value.split(b"|")
                found.append((name, text_of(loan_id), text_of(to), int(units), int(at), int(epoch)))
        return found
