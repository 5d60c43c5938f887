"""GET /v1/orders/{id} and POST /v1/orders/{id}/payment (owner only)."""

from __future__ import annotations

from fastapi import APIRouter

from flashsale.api.deps import CurrentUser, ServicesDep
from flashsale.api.errors import ApiError, error_doc
from flashsale.api.schemas import OrderOut, PaymentOut
from flashsale.orders import OrderClosed, UnknownOrder, get_order, pay_order

router = APIRouter(tags=["orders"])

_UNKNOWN = error_doc("unknown_order")


def _unknown() -> ApiError:
    return ApiError(404, "unknown_order", "no such order")


@router.get(
    "/v1/orders/{order_id}",
    response_model=OrderOut,
    responses={404: _UNKNOWN, 401: error_doc("unauthorized")},
)
def read_order(order_id: str, user: CurrentUser, services: ServicesDep) -> OrderOut:
    try:
        view = get_order(services.sessions, services.stock, user, order_id)
    except UnknownOrder:
        raise _unknown() from None
    return OrderOut(
        order_id=view.order_id,
        sale=view.sale,
        quantity=view.quantity,
        status=view.status,
        expires_at=view.expires_at,
    )


@router.post(
    "/v1/orders/{order_id}/payment",
    response_model=PaymentOut,
    responses={
        404: _UNKNOWN,
        409: error_doc("expired", "rejected"),
        401: error_doc("unauthorized"),
    },
)
def pay(order_id: str, user: CurrentUser, services: ServicesDep) -> PaymentOut:
    try:
        pay_order(services.sessions, services.stock, user, order_id)
    except UnknownOrder:
        raise _unknown() from None
    except OrderClosed as closed:
        raise ApiError(409, closed.status, f"the order is {closed.status}") from None
    return PaymentOut(order_id=order_id, status="paid")
