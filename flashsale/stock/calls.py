"""The formats of the stock scripts' calls and answers: what a purchase sends to
reserve.lua, what it answers, and what loading a sale takes. Shared by the hot path
(AsyncStock) and everything else (Stock)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from flashsale.handoff import MessageTemplate
from flashsale.stock.keys import SaleKeys


class Outcome(StrEnum):
    """What the reserve script decided; each maps to one HTTP answer."""

    ACCEPTED = "accepted"
    UNKNOWN_SALE = "unknown_sale"
    ENDED = "ended"
    PAUSED = "paused"
    NOT_STARTED = "not_started"
    RATE_LIMITED = "rate_limited"
    LIMIT_REACHED = "limit_reached"
    SOLD_OUT = "sold_out"
    KEY_REUSED = "key_reused"  # the Idempotency-Key was first used for another request
    LATE = "late"  # reached Redis after the caller's deadline: nothing was decided
    NOT_ADMITTED = "not_admitted"  # the sale's waiting room has not let this shopper in
    # Between the stock layer and its callers only, never an answer of the API:
    SHORT = "short"  # the shopper's segment lacks the units: borrow, then ask again
    MOVED = "moved"  # sent to a segment that is not the shopper's home: nothing was decided
    MOVING = "moving"  # the sale is being respread: nothing was decided, try again soon


@dataclass(frozen=True, slots=True)
class ReserveResult:
    outcome: Outcome
    order_id: str | None = None
    expires_at_ms: int = 0
    quantity: int = 0
    replayed: bool = False
    retry_after_ms: int = 0

    @classmethod
    def parse(cls, raw: list[Any]) -> ReserveResult:
        code = text_of(raw[0])
        if code == "ok":
            return cls(
                Outcome.ACCEPTED,
                order_id=text_of(raw[1]),
                expires_at_ms=int(raw[2]),
                quantity=int(raw[3]),
                replayed=text_of(raw[4]) == "1",
            )
        if code == "rate_limited":
            return cls(Outcome.RATE_LIMITED, retry_after_ms=int(raw[1]))
        if code == "key_reused":
            return cls(Outcome.KEY_REUSED, order_id=text_of(raw[1]))
        return cls(Outcome(code))


@dataclass(frozen=True, slots=True)
class RoomLimits:
    """A sale's waiting room, as queue.lua and reserve.lua enforce it."""

    opens_at_ms: int  # 0: when the sale starts
    draw: bool  # a fair draw among those who joined before the start; else first come
    admit_per_second: float
    shopping_seconds: int
    overbook: float


@dataclass(frozen=True, slots=True)
class SaleLimits:
    """The part of a sale's spec that the reserve script enforces."""

    total: int
    sku: str
    starts_at_ms: int
    ends_at_ms: int
    paused: bool
    per_user_limit: int
    rate_per_second: float
    burst: int
    payment_timeout_seconds: int
    segments: int = 1  # hash slots the stock is spread over (flashsale/stock/segments.py)
    room: RoomLimits | None = None  # only admitted shoppers may buy (flashsale/stock/room.py)


class StockLoadError(ValueError):
    """The new total would take away units that are already sold."""


@dataclass(frozen=True, slots=True)
class SoldInSql:
    """What SQL knows is sold, for rebuilding a sale that Redis does not have."""

    live_units: int = 0
    held: tuple[tuple[str, int], ...] = ()  # (user, units in live orders)
    unreturned_expired: tuple[str, ...] = ()  # expired order ids not yet returned


NOTHING_SOLD = SoldInSql()


def text_of(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Purchase:
    """One request to buy, as the reserve script takes it."""

    user: str
    quantity: int
    order_id: str
    idempotency_key: str | None = None

    def keys(self, k: SaleKeys) -> tuple[str, str, str]:
        return (
            k.rate(self.user),
            k.idempotency(self.user, self.idempotency_key),
            k.reservation(self.order_id),
        )

    def args(self) -> tuple[str, int, str, str]:
        return self.user, self.quantity, self.order_id, "1" if self.idempotency_key else "0"


class InvalidPurchase(ValueError):
    """A purchase whose values cannot be sent to Redis (text that is not valid Unicode);
    refused on its own, before it joins other shoppers' purchases in a call."""


@dataclass(frozen=True, slots=True)
class Loan:
    """Units lent by one segment of a sale to another (lend.lua), until settled."""

    loan_id: str
    lender: str  # segment name
    units: int
    epoch: int = 0  # the sale's respreads when it was lent: a later epoch credits nothing

    @property
    def credit(self) -> str:
        return f"{self.loan_id}:{self.units}:{self.epoch}"


def reserve_call(
    segment: str,
    purchases: Sequence[Purchase],
    queue_key: str = "",
    message: MessageTemplate | None = None,
    deadline_ms: int = 0,
    loans: Sequence[Loan] = (),
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of reserve.lua for purchases of one sale segment. With no queue,
    KEYS[5] names a key of the segment itself (never written), keeping the call in one
    slot."""
    k = SaleKeys(segment)
    keys = [k.meta, k.stock, k.held, k.outbox, queue_key or k.meta, k.received]
    keys += [k.admissions, k.room_admitted, k.room_shopped]
    args: list[Any] = [message.head, message.tail] if queue_key and message else [b"", b""]
    args += [deadline_ms, ",".join(loan.credit for loan in loans)]
    for p in purchases:
        keys += p.keys(k)
        args += p.args()
    return keys, args


@dataclass(frozen=True, slots=True)
class SegmentState:
    """What every reserve.lua answer ends with."""

    now_ms: int  # Redis's clock
    remaining: int  # units left in the segment
    segments: int  # the sale's number of segments
    room: bool = False  # the sale has a waiting room


def parse_answers(raw: Any, count: int) -> tuple[list[ReserveResult], SegmentState]:
    """The answers of a reserve.lua call, and the segment's state that ends them."""
    if not isinstance(raw, list) or len(raw) != count + 4:
        raise redis.ResponseError(f"reserve.lua answered {raw!r} to {count} purchases")
    state = SegmentState(
        int(raw[count]), int(raw[count + 1]), int(raw[count + 2]), raw[count + 3] == 1
    )
    return [ReserveResult.parse(answer) for answer in raw[:count]], state
