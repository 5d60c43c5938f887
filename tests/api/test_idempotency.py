"""Idempotency-Key over HTTP: the same request returns the same order as it stands now;
the same key with another request is refused, as payment APIs do."""

from __future__ import annotations

from typing import Any

from tests.conftest import Platform, auth


def headers(user: str, key: str) -> dict[str, str]:
    return auth(user) | {"Idempotency-Key": key}


async def test_a_replay_answers_the_orders_current_status(platform: Platform, client: Any) -> None:
    sale = platform.sale(stock=5, perUserLimit=1)
    first = await client.post(f"/v1/sales/{sale}/reservations", headers=headers("ann", "k-1"))
    assert first.status_code == 202 and first.json()["status"] == "reserved"
    order = first.json()["order_id"]
    paid = await client.post(f"/v1/orders/{order}/payment", headers=auth("ann"))
    assert paid.status_code == 200

    again = await client.post(f"/v1/sales/{sale}/reservations", headers=headers("ann", "k-1"))
    assert again.status_code == 202
    assert again.json()["order_id"] == order
    assert again.json()["status"] == "paid"
    assert again.json()["expires_at"] == first.json()["expires_at"]
    assert platform.remaining(sale) == 4


async def test_a_reused_key_with_another_quantity_is_refused(
    platform: Platform, client: Any
) -> None:
    sale = platform.sale(stock=5, perUserLimit=3)
    path = f"/v1/sales/{sale}/reservations"
    first = await client.post(path, headers=headers("bo", "k-2"), json={"quantity": 1})
    assert first.status_code == 202
    # Both ways in: the fast path (a simple body) and the route (a body it hands on).
    for body in ({"quantity": 2}, {"quantity": 3}):
        reused = await client.post(path, headers=headers("bo", "k-2"), json=body)
        assert reused.status_code == 422, reused.text
        assert reused.json()["error"] == "idempotency_key_reused"
        assert first.json()["order_id"] in reused.json()["detail"]
    assert platform.remaining(sale) == 4
    same = await client.post(path, headers=headers("bo", "k-2"), json={"quantity": 1})
    assert same.status_code == 202 and same.json()["order_id"] == first.json()["order_id"]
