"""A sale's limits as the stock scripts take them, for tests that load a sale directly."""

from __future__ import annotations

import dataclasses
from typing import Any

from flashsale.stock import SaleLimits

DEFAULT = SaleLimits(
    total=10,
    sku="SKU-L",
    starts_at_ms=0,
    ends_at_ms=0,
    paused=False,
    per_user_limit=5,
    rate_per_second=0,
    burst=1,
    payment_timeout_seconds=60,
)


def sale_limits(**changes: Any) -> SaleLimits:
    """Ten units, five per user, no rate limit, open now; `changes` override any field."""
    return dataclasses.replace(DEFAULT, **changes)
