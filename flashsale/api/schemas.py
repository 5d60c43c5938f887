"""Request and response bodies of the HTTP API (they also make the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_QUANTITY = 1000


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: int = Field(default=1, ge=1, le=MAX_QUANTITY, strict=True)


class ReservationOut(BaseModel):
    order_id: str
    sale: str
    quantity: int
    status: Literal["reserved"]
    expires_at: datetime
    payment_url: str


class OrderOut(BaseModel):
    order_id: str
    sale: str
    quantity: int
    status: Literal["reserved", "pending_payment", "paid", "expired", "rejected"]
    expires_at: datetime


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
    starts_at: datetime | None
    ends_at: datetime | None
    stock: StockOut
