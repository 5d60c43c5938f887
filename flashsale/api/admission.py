"""Deciding one purchase: the reserve call and what each outcome answers.

Both ways into POST /v1/sales/{sale}/reservations use this: the ASGI fast path
(`flashsale/api/fastpath.py`), which answers well-formed requests before the framework,
and the documented route (`flashsale/api/routes/reservations.py`), which validates the
rest. One Redis round trip decides and records the purchase; the Celery task message is
pushed by the same script (or, with the 'publish' handoff, right after it): see
AsyncStock. No SQL here, but for an idempotent replay's current status."""

from __future__ import annotations

import logging
import re
import uuid

import orjson
import redis

from flashsale.api.errors import ApiError
from flashsale.api.metrics import RESERVATIONS
from flashsale.api.services import Services
from flashsale.orders import RESERVED
from flashsale.spec import is_valid_sale_name
from flashsale.stock import InvalidPurchase, Outcome, ReserveResult
from flashsale.timefmt import rfc3339_ms

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")

# How long a shopper answered 503 should wait before trying again.
RETRY_AFTER = {"Retry-After": "1"}

_REFUSALS: dict[Outcome, tuple[int, str]] = {
    Outcome.UNKNOWN_SALE: (404, "no such sale"),
    Outcome.SOLD_OUT: (409, "no units left"),
    Outcome.LIMIT_REACHED: (409, "this would exceed the per-user limit of the sale"),
    Outcome.NOT_STARTED: (409, "the sale has not started yet"),
    Outcome.ENDED: (409, "the sale has ended"),
    Outcome.PAUSED: (409, "the sale is paused"),
    Outcome.NOT_ADMITTED: (
        409,
        "the sale's waiting room has not let you in (yet): join it with POST "
        "/v1/sales/{sale}/queue and buy once it says admitted",
    ),
}
# Counter children looked up once, not on every request.
OUTCOMES = {outcome: RESERVATIONS.labels(outcome) for outcome in Outcome}


async def admit(
    services: Services, sale: str, user: str, quantity: int, idempotency_key: str | None
) -> bytes:
    """Decide one purchase of an authenticated user: the body of the 202 answer, or
    ApiError for a refusal. Both callers have checked the Idempotency-Key's form: the
    fast path itself, the route through its documented `pattern`."""
    if not is_valid_sale_name(sale):
        OUTCOMES[Outcome.UNKNOWN_SALE].inc()
        raise ApiError(404, "unknown_sale", "no such sale")
    # A repeated Idempotency-Key must get its first answer back, so only requests without
    # one may be refused from the local sold-out flag.
    if idempotency_key is None and services.sold_out.refuses(sale, quantity):
        OUTCOMES[Outcome.SOLD_OUT].inc()
        raise ApiError(409, Outcome.SOLD_OUT.value, _REFUSALS[Outcome.SOLD_OUT][1])
    order_id = str(uuid.uuid4())
    try:
        result = await services.fast_stock.reserve(sale, user, quantity, order_id, idempotency_key)
    except InvalidPurchase as exc:
        RESERVATIONS.labels("invalid").inc()
        raise ApiError(422, "invalid_request", str(exc)) from None
    except redis.RedisError as exc:
        log.warning("reserve failed: %s", exc)
        raise _unavailable(order_id) from None
    if result.outcome is Outcome.LATE:  # counted as unavailable, once
        raise _unavailable(order_id)
    OUTCOMES[result.outcome].inc()
    if result.outcome is not Outcome.ACCEPTED:
        if result.outcome is Outcome.SOLD_OUT:
            services.sold_out.remember(sale, quantity)
        raise _refusal(result)
    services.sold_out.forget(sale)
    assert result.order_id is not None
    status = RESERVED
    if result.replayed:  # the same order again, as it stands now (paid, say)
        status = await services.order_status(user, result.order_id)
    return orjson.dumps(
        {
            "order_id": result.order_id,
            "sale": sale,
            "quantity": result.quantity,
            "status": status,
            "expires_at": rfc3339_ms(result.expires_at_ms),
            "payment_url": f"/v1/orders/{result.order_id}/payment",
        }
    )


def _unavailable(order_id: str) -> ApiError:
    """Redis did not answer in time. The call may still have run before its deadline, so
    the answer names the order it would have made; one that reaches Redis later decides
    nothing (see AsyncStock._send)."""
    RESERVATIONS.labels("unavailable").inc()
    return ApiError(
        503,
        "unavailable",
        "stock service unavailable, retry; GET /v1/orders/{order_id} tells whether this "
        "purchase went through",
        RETRY_AFTER,
        {"order_id": order_id},
    )


def _refusal(result: ReserveResult) -> ApiError:
    if result.outcome is Outcome.KEY_REUSED:
        return ApiError(
            422,
            "idempotency_key_reused",
            f"this Idempotency-Key was first used for another request (order "
            f"{result.order_id}); use a new key for a new request",
        )
    if result.outcome is Outcome.RATE_LIMITED:
        retry_after = max(1, -(-result.retry_after_ms // 1000))
        return ApiError(
            429, "rate_limited", "too many requests, slow down", {"Retry-After": str(retry_after)}
        )
    status, detail = _REFUSALS[result.outcome]
    return ApiError(status, result.outcome.value, detail)
