"""Stock operations and reads for everything but the hot path: the loader, the workers,
the reaper, the sweeper, the operator, the status figures and the command line.

Each method is one script call or one read of a sale's keys; none hands out the client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from flashsale.handoff import MessageTemplate, persist_template
from flashsale.stock.calls import (
    NOTHING_SOLD,
    Purchase,
    ReserveResult,
    SaleLimits,
    SoldInSql,
    StockLoadError,
    parse_answers,
    reserve_call,
    text_of,
)
from flashsale.stock.keys import SaleKeys
from flashsale.stock.scripts import Scripts

UNLINK_BATCH = 500
PAGE = 1000
RESERVATION_FIELDS = ("user", "qty", "reserved_at", "expires_at", "state")


@dataclass(frozen=True, slots=True)
class Closed:
    existed: bool
    waiting: int  # reservations still on their way to SQL


@dataclass(frozen=True, slots=True)
class SaleInRedis:
    """One atomic read of a sale's figures in Redis (None fields: Redis has no such sale)."""

    total: int | None
    remaining: int
    inflight: int
    live: int
    outbox: int
    closed: bool
    now_ms: int

    @property
    def exists(self) -> bool:
        return self.total is not None


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits for the workers in one sale: outbox entries and the oldest one's age."""

    remaining: int
    outbox: int
    oldest_age_seconds: float


def _ms(secs: Any, micros: Any) -> int:
    return int(secs) * 1000 + int(micros) // 1000


class Stock:
    """Stock operations on one Redis (a client with the timeouts of its role)."""

    def __init__(self, client: redis.Redis) -> None:
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

    def now_ms(self) -> int:
        return _ms(*self._client.time())

    def reserve(
        self,
        sale: str,
        user: str,
        quantity: int,
        order_id: str,
        idempotency_key: str | None = None,
        queue: str = "",
        message: MessageTemplate | None = None,
    ) -> ReserveResult:
        """One purchase; with a queue, the script pushes its task message there."""
        purchase = Purchase(user, quantity, order_id, idempotency_key)
        return self.reserve_many(sale, [purchase], queue, message)[0]

    def reserve_many(
        self,
        sale: str,
        purchases: Sequence[Purchase],
        queue: str = "",
        message: MessageTemplate | None = None,
    ) -> list[ReserveResult]:
        """Purchases of one sale in one script call, as the API makes them; the accepted
        ones share one task message (`message`, or a new one) when a queue is given."""
        if queue and message is None:
            message = persist_template(sale, queue)
        keys, args = reserve_call(sale, purchases, queue, message)
        return parse_answers(self._scripts.reserve(keys=keys, args=args), len(purchases))

    def load(self, sale: str, limits: SaleLimits, sold: SoldInSql = NOTHING_SOLD) -> int:
        """Create or update the sale; returns the units still for sale. `sold` counts
        only when Redis has no such sale yet."""
        k = SaleKeys(sale)
        raw = self._scripts.load(
            keys=[k.meta, k.stock, k.held, k.restored],
            args=[
                limits.total,
                limits.sku,
                limits.starts_at_ms,
                limits.ends_at_ms,
                "1" if limits.paused else "0",
                limits.per_user_limit,
                repr(float(limits.rate_per_second)),
                limits.burst,
                limits.payment_timeout_seconds,
                sold.live_units,
                len(sold.held),
                *(part for pair in sold.held for part in pair),
                *sold.unreturned_expired,
            ],
        )
        if text_of(raw[0]) == "below_sold":
            raise StockLoadError(
                f"sale {sale!r}: stock cannot drop to {limits.total}: "
                f"{int(raw[1]) - int(raw[2])} units are already taken"
            )
        return int(raw[2])

    def ack(self, sale: str, order_id: str, rejected: bool = False) -> bool:
        return self.ack_many(sale, {order_id: rejected}) == 1

    def ack_many(self, sale: str, rejected: Mapping[str, bool]) -> int:
        """Take persisted reservations off the outbox (`rejected[id]`: SQL refused it);
        returns how many this call acknowledged."""
        if not rejected:
            return 0
        k = SaleKeys(sale)
        args: list[str] = []
        for order_id, refused in rejected.items():
            args += [order_id, "rejected" if refused else "persisted"]
        keys = [k.meta, k.outbox, k.held, *(k.reservation(order_id) for order_id in rejected)]
        return int(self._scripts.ack(keys=keys, args=args))

    def restore_many(self, sale: str, orders: Sequence[tuple[str, str, int]]) -> list[int]:
        """Give expired orders (order id, user, quantity) of one sale their units back, in
        one call; per order 1: returned now, 0: returned before, -1: the sale is gone."""
        if not orders:
            return []
        k = SaleKeys(sale)
        keys = [k.meta, k.stock, k.held, k.restored, *(k.reservation(o) for o, _, _ in orders)]
        args = [part for order in orders for part in order]
        return [int(answer) for answer in self._scripts.restore(keys=keys, args=args)]

    def restore(self, sale: str, order_id: str, user: str, quantity: int) -> int:
        return self.restore_many(sale, [(order_id, user, quantity)])[0]

    def release(self, sale: str, order_id: str) -> int:
        """A reservation that can never be stored gives its units back; returns how many
        (0 when it was stored or released before)."""
        k = SaleKeys(sale)
        return int(
            self._scripts.release(
                keys=[k.meta, k.stock, k.held, k.outbox, k.reservation(order_id)],
                args=[order_id],
            )
        )

    def close_sale(self, sale: str) -> Closed:
        """No reservation is accepted after this returns; tells what is still in flight."""
        keys = SaleKeys(sale)
        existed, waiting = self._scripts.close(keys=[keys.meta, keys.outbox])
        return Closed(existed=bool(int(existed)), waiting=int(waiting))

    def remove_sale(self, sale: str) -> int:
        """Unlink every key of the sale (SCAN + UNLINK in batches, so a big sale never
        blocks Redis); returns how many were removed. Orders stay in SQL."""
        removed = 0
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=SaleKeys(sale).pattern, count=UNLINK_BATCH):
            batch.append(key)
            if len(batch) >= UNLINK_BATCH:
                removed += int(self._client.unlink(*batch))
                batch.clear()
        if batch:
            removed += int(self._client.unlink(*batch))
        return removed

    def has_sale(self, sale: str) -> bool:
        return bool(self._client.exists(SaleKeys(sale).meta))

    def remaining(self, sale: str) -> int:
        return int(self._client.get(SaleKeys(sale).stock) or 0)

    def outbox_size(self, sale: str) -> int:
        return int(self._client.zcard(SaleKeys(sale).outbox))

    def outbox_members(self, sale: str) -> set[str]:
        """Ids of the reservations not yet in SQL."""
        return {text_of(m) for m in self._client.zrange(SaleKeys(sale).outbox, 0, -1)}

    def returned_orders(self, sale: str) -> set[str]:
        """Ids of the orders whose units restore.lua gave back."""
        return {text_of(m) for m in self._client.smembers(SaleKeys(sale).restored)}

    def sale_in_redis(self, sale: str) -> SaleInRedis:
        """The sale's figures in one MULTI/EXEC (every key is in one slot, so the read is
        atomic: the scripts move units between these figures in single steps). Redis's
        clock is read just before, on its own: a Redis Cluster refuses TIME in a pipeline,
        and the phase it decides does not need it inside the transaction."""
        now_ms = self.now_ms()
        keys = SaleKeys(sale)
        pipe = self._client.pipeline(transaction=True)
        pipe.hmget(keys.meta, "total", "inflight", "live", "closed")
        pipe.get(keys.stock)
        pipe.zcard(keys.outbox)
        (total, inflight, live, closed), remaining, outbox = pipe.execute()
        return SaleInRedis(
            total=None if total is None else int(total),
            remaining=int(remaining or 0),
            inflight=int(inflight or 0),
            live=int(live or 0),
            outbox=int(outbox),
            closed=closed == b"1",
            now_ms=now_ms,
        )

    def backlogs(self, sales: Iterable[str]) -> dict[str, Backlog]:
        """Remaining stock, outbox size and the oldest entry's age of each sale, in one
        pipeline (for the platform figures); the clock is read first, on its own, as a
        Redis Cluster wants it."""
        names = list(sales)
        now_ms = self.now_ms()
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            keys = SaleKeys(name)
            pipe.get(keys.stock)
            pipe.zcard(keys.outbox)
            pipe.zrange(keys.outbox, 0, 0, withscores=True)
        replies = pipe.execute()
        found: dict[str, Backlog] = {}
        for i, name in enumerate(names):
            remaining, outbox, oldest = replies[3 * i : 3 * i + 3]
            age = max(0.0, (now_ms - float(oldest[0][1])) / 1000) if oldest else 0.0
            found[name] = Backlog(int(remaining or 0), int(outbox), age)
        return found

    def read_reservations(
        self, sale: str, order_ids: Iterable[str]
    ) -> list[tuple[str, list[bytes]]]:
        """(order id, [user, qty, reserved_at, expires_at, state]) of each reservation
        Redis still has, oldest first, in one round trip; unknown ids are left out."""
        wanted = list(dict.fromkeys(order_ids))
        keys = SaleKeys(sale)
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
        """The sale and the reservation hash of `order_id`, asking every sale at once (an
        order id does not name its sale)."""
        if not sales:
            return None
        pipe = self._client.pipeline(transaction=False)
        for name in sales:
            pipe.hgetall(SaleKeys(name).reservation(order_id))
        for name, raw in zip(sales, pipe.execute(), strict=True):
            if raw:
                return name, raw
        return None

    def stale_reservations(self, sale: str, older_than_ms: int) -> list[str]:
        """Outbox entries older than `older_than_ms` (Redis's clock)."""
        cutoff = self.now_ms() - older_than_ms
        found: list[str] = []
        while True:
            page: list[bytes] = self._client.zrangebyscore(  # type: ignore[assignment]
                SaleKeys(sale).outbox, "-inf", cutoff, start=len(found), num=PAGE
            )
            found.extend(text_of(member) for member in page)
            if len(page) < PAGE:
                return found

    def mark_handed_out(self, sale: str, order_ids: Sequence[str]) -> None:
        """Outbox entries handed to the workers again count as new from now; an entry a
        worker removed meanwhile stays removed (XX)."""
        if order_ids:
            now = self.now_ms()
            self._client.zadd(SaleKeys(sale).outbox, dict.fromkeys(order_ids, now), xx=True)
