"""Reading and paying orders over HTTP, and the sale's figures."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import Platform, auth, wait_for


async def test_reserve_read_pay(platform: Platform, client: httpx.AsyncClient, worker) -> None:
    sale = platform.sale(stock=5, sku="TV-55")
    r = await client.post(
        f"/v1/sales/{sale}/reservations", json={"quantity": 1}, headers=auth("frank")
    )
    assert r.status_code == 202
    body = r.json()
    assert set(body) == {"order_id", "sale", "quantity", "status", "expires_at", "payment_url"}
    assert body["status"] == "reserved" and body["sale"] == sale and body["quantity"] == 1
    order = body["order_id"]
    assert body["payment_url"] == f"/v1/orders/{order}/payment"

    def persisted() -> bool:
        got = httpx.get(f"{client.base_url}/v1/orders/{order}", headers=auth("frank"))
        return got.json()["status"] == "pending_payment"

    wait_for(persisted)
    paid = await client.post(f"/v1/orders/{order}/payment", headers=auth("frank"))
    assert paid.status_code == 200 and paid.json() == {"order_id": order, "status": "paid"}
    again = await client.post(f"/v1/orders/{order}/payment", headers=auth("frank"))
    assert again.status_code == 200 and again.json()["status"] == "paid"
    view = (await client.get(f"/v1/orders/{order}", headers=auth("frank"))).json()
    assert view["status"] == "paid" and view["quantity"] == 1

    status = (await client.get(f"/v1/sales/{sale}")).json()
    assert status["sku"] == "TV-55" and status["phase"] == "Active"
    assert status["stock"] == {
        "total": 5,
        "remaining": 4,
        "reserved": 0,
        "pending_payment": 0,
        "paid": 1,
        "expired": 0,
    }


async def test_paying_a_reservation_not_yet_persisted(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    # Reserved with no task published: no worker will see it; payment persists it first.
    sale = platform.sale(stock=5)
    order = str(uuid.uuid4())
    assert platform.stock.reserve(sale, "gina", 1, order).order_id == order
    view = (await client.get(f"/v1/orders/{order}", headers=auth("gina"))).json()
    assert view["status"] == "reserved"
    paid = await client.post(f"/v1/orders/{order}/payment", headers=auth("gina"))
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    assert [row["status"] for row in platform.orders(sale)] == ["paid"]


async def test_expired_order_cannot_be_paid(
    platform: Platform, client: httpx.AsyncClient, worker
) -> None:
    sale = platform.sale(stock=5, paymentTimeoutSeconds=1)
    r = await client.post(f"/v1/sales/{sale}/reservations", headers=auth("hank"))
    order = r.json()["order_id"]
    wait_for(lambda: len(platform.orders(sale)) == 1)
    wait_for(lambda: platform.orders(sale) and True, timeout=1)
    import time

    time.sleep(1.2)
    refused = await client.post(f"/v1/orders/{order}/payment", headers=auth("hank"))
    assert refused.status_code == 409 and refused.json()["error"] == "expired"


async def test_sold_out_phase(platform: Platform, client: httpx.AsyncClient) -> None:
    sale = platform.sale(stock=1)
    assert (
        await client.post(f"/v1/sales/{sale}/reservations", headers=auth("ivy"))
    ).status_code == 202
    status = (await client.get(f"/v1/sales/{sale}")).json()
    assert status["phase"] == "SoldOut"
    assert status["stock"]["remaining"] == 0
    assert status["stock"]["reserved"] + status["stock"]["pending_payment"] == 1
