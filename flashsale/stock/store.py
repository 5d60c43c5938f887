"""Stock operations for everything but the hot path: the loader, the workers, the reaper,
the sweeper, the operator, the status figures and the command line.

Each method is one script call or one read of a sale's keys; none hands out the client.
Methods that take `segment` act on one segment of a sale (what a task message or an
outbox names); methods that take `sale` act on the whole sale, every segment."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flashsale.handoff import MessageTemplate, persist_template
from flashsale.stock.calls import (
    NOTHING_SOLD,
    Loan,
    Purchase,
    ReserveResult,
    SaleLimits,
    SoldInSql,
    StockLoadError,
    parse_answers,
    reserve_call,
    text_of,
)
from flashsale.stock.keys import SaleKeys, other_segments_pattern
from flashsale.stock.layout import changed_totals, new_sale
from flashsale.stock.reads import SyncRedis
from flashsale.stock.room import RoomOps
from flashsale.stock.scripts import Scripts
from flashsale.stock.segments import home, segment_name, segment_names, split

UNLINK_BATCH = 500
# A loan older than this was given up by its borrower (whose calls carry deadlines of a
# few seconds): the sweep credits it to the borrowing segment and settles it.
LOAN_GRACE_MS = 30_000


@dataclass(frozen=True, slots=True)
class Closed:
    existed: bool
    waiting: int  # reservations still on their way to SQL


class Stock(RoomOps):
    """Stock operations on one Redis or Redis Cluster (a client with the timeouts of its
    role)."""

    def __init__(self, client: SyncRedis) -> None:
        self._client = client
        self._scripts: Scripts[Any] = Scripts.register(client)

    def close(self) -> None:
        self._client.close()

    def load_script(self, name: str) -> str:
        """Load one script into Redis's cache; its SHA-1, for a caller that sends EVALSHA
        itself (the benchmark's redis-benchmark runs)."""
        sha: str = self._client.script_load(getattr(self._scripts, name).script)
        return sha

    def ping(self) -> bool:
        return bool(self._client.ping())

    def reserve(
        self,
        segment: str,
        user: str,
        quantity: int,
        order_id: str,
        idempotency_key: str | None = None,
        queue: str = "",
        message: MessageTemplate | None = None,
    ) -> ReserveResult:
        """One purchase in one segment; with a queue, the script pushes its task message."""
        purchase = Purchase(user, quantity, order_id, idempotency_key)
        return self.reserve_many(segment, [purchase], queue, message)[0]

    def reserve_many(
        self,
        segment: str,
        purchases: Sequence[Purchase],
        queue: str = "",
        message: MessageTemplate | None = None,
        loans: Sequence[Loan] = (),
    ) -> list[ReserveResult]:
        """Purchases of one segment in one script call, as the API makes them; the
        accepted ones share one task message (`message`, or a new one) when a queue is
        given. Whole-sale purchases (routing, borrowing) are the hot path's
        (flashsale/stock/hotpath.py)."""
        if queue and message is None:
            message = persist_template(segment, queue)
        keys, args = reserve_call(segment, purchases, queue, message, loans=loans)
        raw = self._scripts.reserve(keys=keys, args=args)
        return parse_answers(raw, len(purchases))[0]

    def load(self, sale: str, limits: SaleLimits, sold: SoldInSql = NOTHING_SOLD) -> int:
        """Create or update the sale, each segment with its share; returns the units still
        for sale. `sold` counts only when Redis has no such sale yet."""
        names = segment_names(sale, limits.segments)
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(SaleKeys(name).meta, "total", "segments")
            pipe.get(SaleKeys(name).stock)
        replies = pipe.execute()
        loaded = [None if t is None else int(t) for t, _ in replies[0::2]]
        stocks = [int(s or 0) for s in replies[1::2]]
        current = int(replies[0][1] or 1) if loaded[0] is not None else limits.segments
        if current != limits.segments:
            raise StockLoadError(
                f"sale {sale!r} is spread over {current} segments in Redis, not "
                f"{limits.segments}: it must be respread (flashsale/sales.py)"
            )
        if loaded[0] is None:
            targets, live, held = new_sale(limits, sold)
        else:
            targets, live, held = (
                changed_totals(sale, limits.total, loaded, stocks),
                None,
                None,
            )
        remaining = 0
        for k, name in enumerate(names):
            remaining += self._load_segment(name, k, limits, targets[k], live, held, sold, False)
        self.configure_room(sale, limits.segments, limits.room)
        return remaining

    def hold(self, sale: str) -> Closed:
        """Stop deciding purchases of every segment until `load_afresh` (answered "try
        again", never refused); tells what is still on its way to SQL."""
        return self._flag(sale, "moving")

    def load_afresh(self, sale: str, limits: SaleLimits, sold: SoldInSql) -> int:
        """Load a held sale again from SQL's figures, over `limits.segments` segments, in a
        new epoch (loans of the old one credit nothing); every key but the first segment's
        meta must be gone (`remove_sale(keep_meta=True)`). The first segment goes last:
        until its meta names the new layout, a re-run starts over."""
        epoch = int(self._client.hget(SaleKeys(sale).meta, "epoch") or 0) + 1
        targets, live, held = new_sale(limits, sold)
        names = segment_names(sale, limits.segments)
        remaining = sum(
            self._load_segment(names[k], k, limits, targets[k], live, held, sold, True, epoch)
            for k in reversed(range(limits.segments))
        )
        self.configure_room(sale, limits.segments, limits.room)
        return remaining

    def _load_segment(
        self,
        name: str,
        index: int,
        limits: SaleLimits,
        total: int,
        live: list[int] | None,
        held: list[list[tuple[str, int]]] | None,
        sold: SoldInSql,
        fresh: bool,
        epoch: int = 0,
    ) -> int:
        k = SaleKeys(name)
        pairs = held[index] if held else []
        raw = self._scripts.load(
            keys=[k.meta, k.stock, k.held, k.restored],
            args=[
                total,
                limits.sku,
                limits.starts_at_ms,
                limits.ends_at_ms,
                "1" if limits.paused else "0",
                limits.per_user_limit,
                repr(float(limits.rate_per_second)),
                limits.burst,
                limits.payment_timeout_seconds,
                limits.segments,
                index,
                "1" if fresh else "0",
                epoch,
                live[index] if live else 0,
                len(pairs),
                *(part for pair in pairs for part in pair),
                *sold.unreturned_expired,
            ],
        )
        answer = text_of(raw[0])
        if answer == "below_sold":
            raise StockLoadError(
                f"sale {split(name)[0]!r}: stock cannot drop to {limits.total}: "
                f"{int(raw[1]) - int(raw[2])} units are already taken"
            )
        if answer == "segments_differ":
            raise StockLoadError(f"segment {name!r} belongs to a sale of {int(raw[1])} segments")
        return int(raw[2])

    def ack(self, segment: str, order_id: str, rejected: bool = False) -> bool:
        return self.ack_many(segment, {order_id: rejected}) == 1

    def ack_many(self, segment: str, rejected: Mapping[str, bool]) -> int:
        """Take persisted reservations off a segment's outbox (`rejected[id]`: SQL refused
        it); returns how many this call acknowledged."""
        if not rejected:
            return 0
        k = SaleKeys(segment)
        args: list[str] = []
        for order_id, refused in rejected.items():
            args += [order_id, "rejected" if refused else "persisted"]
        keys = [k.meta, k.outbox, k.held, *(k.reservation(order_id) for order_id in rejected)]
        return int(self._scripts.ack(keys=keys, args=args))

    def restore_many(self, sale: str, orders: Sequence[tuple[str, str, int]]) -> list[int]:
        """Give expired orders (order id, user, quantity) of one sale their units back, each
        to its shopper's home segment, one call per segment; per order 1: returned now,
        0: returned before, -1: the sale is gone."""
        if not orders:
            return []
        count = self.segments(sale)
        by_segment: dict[int, list[int]] = defaultdict(list)
        for i, (_, user, _) in enumerate(orders):
            by_segment[home(user, count)].append(i)
        answers = [0] * len(orders)
        for index, positions in by_segment.items():
            k = SaleKeys(segment_name(sale, index, count))
            mine = [orders[i] for i in positions]
            keys = [k.meta, k.stock, k.held, k.restored, *(k.reservation(o) for o, _, _ in mine)]
            args = [part for order in mine for part in order]
            for i, answer in zip(
                positions, self._scripts.restore(keys=keys, args=args), strict=True
            ):
                answers[i] = int(answer)
        return answers

    def restore(self, sale: str, order_id: str, user: str, quantity: int) -> int:
        return self.restore_many(sale, [(order_id, user, quantity)])[0]

    def release(self, segment: str, order_id: str) -> int:
        """A reservation that can never be stored gives its units back; returns how many
        (0 when it was stored or released before)."""
        k = SaleKeys(segment)
        return int(
            self._scripts.release(
                keys=[k.meta, k.stock, k.held, k.outbox, k.reservation(order_id)],
                args=[order_id],
            )
        )

    def close_sale(self, sale: str) -> Closed:
        """No reservation is accepted after this returns; tells what is still in flight."""
        return self._flag(sale, "closed")

    def _flag(self, sale: str, flag: str) -> Closed:
        existed, waiting = False, 0
        for name in self.segment_names(sale):
            keys = SaleKeys(name)
            was, left = self._scripts.close(keys=[keys.meta, keys.outbox], args=[flag])
            existed, waiting = existed or bool(int(was)), waiting + int(left)
        return Closed(existed=existed, waiting=waiting)

    def remove_sale(self, sale: str, keep_meta: bool = False) -> int:
        """Unlink every key of every segment of the sale (SCAN + UNLINK in batches, so a
        big sale never blocks Redis), but the first segment's meta and waiting room when
        `keep_meta` (a held sale stays held, its shoppers keep their places); returns how
        many were removed. Orders stay in SQL."""
        removed = 0
        first = SaleKeys(sale)
        kept = (first.meta.encode(), (first.prefix + "room:").encode()) if keep_meta else None
        for pattern in (SaleKeys(sale).pattern, other_segments_pattern(sale)):
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=UNLINK_BATCH):
                if kept and (key == kept[0] or key.startswith(kept[1])):
                    continue  # the meta keeps the sale held, the room keeps its queue
                batch.append(key)
                if len(batch) >= UNLINK_BATCH:
                    removed += self._unlink(batch)
            removed += self._unlink(batch)
        return removed

    def _unlink(self, batch: list[bytes]) -> int:
        # One key per command: the keys of several segments live in several slots.
        pipe = self._client.pipeline(transaction=False)
        for key in batch:
            pipe.unlink(key)
        removed = sum(int(n) for n in pipe.execute()) if batch else 0
        batch.clear()
        return removed

    def mark_handed_out(self, segment: str, order_ids: Sequence[str]) -> None:
        """Outbox entries handed to the workers again count as new from now; an entry a
        worker removed meanwhile stays removed (XX)."""
        if order_ids:
            now = self.now_ms()
            self._client.zadd(SaleKeys(segment).outbox, dict.fromkeys(order_ids, now), xx=True)

    def lend(
        self, sale: str, lender: int, borrower: int, units: int, deadline_ms: int = 0
    ) -> Loan | None:
        """Move up to `units` units of segment `lender` towards segment `borrower`; the loan
        (None when nothing was lent) must then be credited (`credit`) and settled."""
        count = self.segments(sale)
        name, to = segment_name(sale, lender, count), segment_name(sale, borrower, count)
        k = SaleKeys(name)
        loan_id = uuid.uuid4().hex
        lent, _, _, epoch = self._scripts.lend(
            keys=[k.meta, k.stock, k.loans], args=[loan_id, to, units, deadline_ms]
        )
        return Loan(loan_id, name, int(lent), int(epoch)) if int(lent) > 0 else None

    def credit(self, sale: str, borrower: int, loans: Sequence[Loan]) -> int:
        """Credit loans to the borrowing segment, each once; returns its units for sale."""
        return self._credit(segment_name(sale, borrower, self.segments(sale)), loans)

    def _credit(self, borrower: str, loans: Sequence[Loan]) -> int:
        keys, args = reserve_call(borrower, (), loans=loans)
        return parse_answers(self._scripts.reserve(keys=keys, args=args), 0)[1].remaining

    def settle(self, loans: Sequence[Loan]) -> int:
        by_lender: dict[str, list[str]] = defaultdict(list)
        for loan in loans:
            by_lender[loan.lender].append(loan.loan_id)
        return sum(
            int(self._scripts.settle(keys=[SaleKeys(name).loans], args=ids))
            for name, ids in by_lender.items()
        )

    def settle_stale_loans(self, sale: str, older_than_ms: int = LOAN_GRACE_MS) -> int:
        """Loans whose borrower went away (died between lending and crediting, or gave up):
        credit each to its borrowing segment, once, then settle it. Returns how many."""
        now = self.now_ms()
        stale = [loan for loan in self.open_loans(sale) if now - loan[4] >= older_than_ms]
        if stale and self.sale_in_redis(sale).moving:
            return 0  # a respread counts every unit afresh; its loans go with the old keys
        by_borrower: dict[str, list[Loan]] = defaultdict(list)
        for lender, loan_id, borrower, units, _, epoch in stale:
            by_borrower[borrower].append(Loan(loan_id, lender, units, epoch))
        for borrower, loans in by_borrower.items():
            self._credit(borrower, loans)
            self.settle(loans)
        return len(stale)
