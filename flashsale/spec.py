"""The FlashSale spec: one schema for the CRD, `flashsale sale apply` and the operator."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

# Kubernetes object names (DNS-1123 subdomain); also safe inside Redis keys and URLs.
SALE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# What PostgreSQL's integer columns hold (stock, per-user limit, payment timeout).
INT32_MAX = 2**31 - 1
# Most hash slots one sale's stock is spread over (flashsale/stock/segments.py).
MAX_SEGMENTS = 64


def is_valid_sale_name(name: str) -> bool:
    return len(name) <= 253 and SALE_NAME.match(name) is not None


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RateLimit(_Spec):
    requests_per_second: float = Field(default=2.0, ge=0, alias="requestsPerSecond")
    burst: int = Field(default=5, ge=1)


class ApiScale(_Spec):
    replicas: int = Field(default=2, ge=0)


class WorkerScale(_Spec):
    replicas: int = Field(default=1, ge=0)
    orders_per_second: float = Field(default=500.0, gt=0, alias="ordersPerSecond")


class WaitingRoom(_Spec):
    """A queue in front of the sale: only admitted shoppers may buy."""

    # The queue opens (joins are taken); absent: when the sale starts.
    opens_at: AwareDatetime | None = Field(default=None, alias="opensAt")
    # draw: everyone who joined before the start is placed by a fair random draw at the
    # start, later arrivals behind them in arrival order; fifo: arrival order throughout.
    order: Literal["draw", "fifo"] = "draw"
    admit_per_second: float = Field(default=50.0, gt=0, le=100_000, alias="admitPerSecond")
    shopping_seconds: int = Field(default=120, ge=1, le=86_400, alias="shoppingSeconds")
    # Admitted shoppers who have not bought yet never exceed remaining units x overbook.
    overbook: float = Field(default=1.0, gt=0, le=1000)


class SaleSpec(_Spec):
    sku: str = Field(min_length=1, max_length=255)
    stock: int = Field(ge=0, le=INT32_MAX)
    per_user_limit: int = Field(default=1, ge=1, le=INT32_MAX, alias="perUserLimit")
    starts_at: AwareDatetime | None = Field(default=None, alias="startsAt")
    ends_at: AwareDatetime | None = Field(default=None, alias="endsAt")
    payment_timeout_seconds: int = Field(
        default=600, ge=1, le=INT32_MAX, alias="paymentTimeoutSeconds"
    )
    paused: bool = False
    # Hash slots the stock is spread over, so one hot sale spreads over that many Redis
    # Cluster masters (flashsale/stock/segments.py).
    segments: int = Field(default=1, ge=1, le=MAX_SEGMENTS)
    rate_limit: RateLimit = Field(default_factory=RateLimit, alias="rateLimit")
    api: ApiScale = Field(default_factory=ApiScale)
    worker: WorkerScale = Field(default_factory=WorkerScale)
    waiting_room: WaitingRoom | None = Field(default=None, alias="waitingRoom")

    @field_validator("sku")
    @classmethod
    def _sku_is_printable(cls, sku: str) -> str:
        # It reaches a SQL text column, Redis and every status line: no control characters.
        if not sku.isprintable() or sku.isspace():
            raise ValueError("must be printable characters, not only spaces")
        return sku

    @model_validator(mode="after")
    def _window_is_ordered(self) -> Self:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("endsAt must be after startsAt")
        room = self.waiting_room
        if room and room.opens_at and self.starts_at and room.opens_at > self.starts_at:
            raise ValueError("waitingRoom.opensAt must not be after startsAt")
        return self

    def as_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def epoch_ms(moment: datetime | None) -> int:
    return int(moment.timestamp() * 1000) if moment else 0
