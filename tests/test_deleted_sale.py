"""A sale whose FlashSale was deleted (its Redis keys removed, its orders kept in SQL)
still reads as a whole: phase Ended, figures that add up, pending orders counted."""

from __future__ import annotations

import uuid

import httpx

from flashsale.orders import pay_order
from flashsale.persist import persist_reservations
from flashsale.sales import sale_status
from tests.conftest import Platform


def test_a_deleted_sale_keeps_figures_that_add_up(platform: Platform, api: str) -> None:
    sale = platform.sale(stock=60, perUserLimit=1)
    orders = []
    for user in ("ann", "bob", "cy", "dee"):
        order = str(uuid.uuid4())
        assert platform.stock.reserve(sale, user, 1, order).order_id == order
        orders.append(order)
    persist_reservations(platform.sessions, platform.stock, sale, orders)
    pay_order(platform.sessions, platform.stock, "ann", orders[0])

    # What the operator's finalizer does on `kubectl delete`.
    platform.stock.close_sale(sale)
    platform.stock.remove_sale(sale)

    status = sale_status(platform.sessions, platform.stock, sale)
    assert status is not None
    assert status.phase == "Ended"
    s = status.stock
    assert (s.total, s.paid, s.pending_payment, s.reserved, s.remaining) == (60, 1, 3, 0, 56)
    assert s.paid + s.pending_payment + s.reserved + s.remaining == s.total
    answer = httpx.get(f"{api}/v1/sales/{sale}", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["phase"] == "Ended"
    assert answer.json()["stock"] | {"expired": 0} == {
        "total": 60,
        "remaining": 56,
        "reserved": 0,
        "pending_payment": 3,
        "paid": 1,
        "expired": 0,
    }
