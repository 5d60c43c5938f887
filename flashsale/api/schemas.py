"""Request and response bodies of the HTTP API (they also make the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from flashsale.timefmt import rfc3339

MAX_QUANTITY = 1000

# Every time in an answer, written as flashsale.timefmt writes it (the fast path's 202
# too), whatever the time zone of the datetime given.
Timestamp = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "example": "2030-01-01T09:00:00.000Z"}
    ),
]


def _json_whole_number(value: object) -> object:
    """2.0 is a whole number in JSON (and JSON Schema's `integer`); "2" and true are not."""
    if isinstance(value, str | bool):
        raise ValueError("must be a whole number")
    return value


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: Annotated[int, BeforeValidator(_json_whole_number)] = Field(
        default=1, ge=1, le=MAX_QUANTITY
    )


OrderStatusText = Literal["reserved", "pending_payment", "paid", "expired", "rejected"]


class ReservationOut(BaseModel):
    order_id: str
    sale: str
    quantity: int
    # `reserved` for a new order; a replay of an Idempotency-Key answers the same order as
    # it stands now (paid, say).
    status: OrderStatusText
    expires_at: Timestamp
    payment_url: str


class OrderOut(BaseModel):
    order_id: str
    sale: str
    quantity: int
    status: OrderStatusText
    expires_at: Timestamp


class PaymentOut(BaseModel):
    order_id: str
    status: Literal["paid"]


class StockOut(BaseModel):
    total: int
    remaining: int
    reserved: int
    pending_payment: int
    paid: int
    expired: int


class SaleOut(BaseModel):
    name: str
    sku: str
    phase: Literal["Scheduled", "Active", "SoldOut", "Ended", "Paused"]
    starts_at: Timestamp | None
    ends_at: Timestamp | None
    stock: StockOut


class QueueOut(BaseModel):
    """A shopper's place in a sale's waiting room (`admitted_until` on GET only)."""

    sale: str
    status: Literal["waiting", "admitted", "expired", "sold_out"]
    position: int | None  # 1 = next in; null while the draw is pending
    ahead: int | None
    estimated_wait_seconds: float | None
    chance: float  # units still possible over shoppers ahead (and you), at most 1
    poll_after_seconds: int
    admitted_until: datetime | None = None
