"""POST /v1/sales/{sale}/reservations: the documented route. Well-formed requests are
answered by the fast path before they get here (flashsale/api/fastpath.py); both decide
through flashsale/api/admission.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from starlette.responses import Response

from flashsale.api.admission import IDEMPOTENCY_KEY, admit
from flashsale.api.deps import CurrentUser, ServicesDep
from flashsale.api.errors import error_doc
from flashsale.api.schemas import ReservationOut, ReservationRequest

router = APIRouter(tags=["reservations"])


@router.post(
    "/v1/sales/{sale}/reservations",
    status_code=202,
    response_model=ReservationOut,
    responses={
        404: error_doc("unknown_sale"),
        409: error_doc("sold_out", "limit_reached", "not_started", "ended", "paused"),
        429: error_doc("rate_limited"),
        401: error_doc("unauthorized"),
        422: error_doc("invalid_request", "idempotency_key_reused"),
        503: {
            **error_doc("unavailable"),
            "description": "Error code: unavailable. The body carries the `order_id` the "
            "purchase would have had: GET /v1/orders/{order_id} tells whether it happened.",
        },
    },
)
async def reserve(
    sale: str,
    user: CurrentUser,
    services: ServicesDep,
    body: ReservationRequest | None = None,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=200, pattern=IDEMPOTENCY_KEY.pattern)
    ] = None,
) -> Response:
    # Well-formed requests are answered by ReservationFastPath before they get here;
    # this route documents the endpoint and answers the rest (it validates everything).
    accepted = await admit(services, sale, user, body.quantity if body else 1, idempotency_key)
    return Response(accepted, status_code=202, media_type="application/json")
