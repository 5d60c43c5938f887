"""Reservations and orders made directly against the platform's stock and database, as
the API and the worker would make them."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from flashsale.persist import persist_reservation
from flashsale.stock import Outcome
from tests.conftest import Platform


def reserve(platform: Platform, sale: str, user: str, qty: int = 1) -> str:
    """A reservation in Redis only (no task message), as if the worker had not run yet."""
    order_id = str(uuid.uuid4())
    result = platform.stock.reserve(sale, user, qty, order_id)
    assert result.outcome == Outcome.ACCEPTED, result
    return order_id


def order(platform: Platform, sale: str, user: str, qty: int = 1) -> str:
    """A reservation persisted as a pending_payment order, as a worker would."""
    order_id = reserve(platform, sale, user, qty)
    status = persist_reservation(platform.sessions, platform.stock, sale, order_id)
    assert status == "pending_payment"
    return order_id


def make_due(platform: Platform, sale: str) -> None:
    """Every pending order of the sale past its payment deadline."""
    with platform.sessions.begin() as session:
        session.execute(
            text(
                "UPDATE orders SET expires_at = now() - interval '1 second' "
                "WHERE sale = :s AND status = 'pending_payment'"
            ),
            {"s": sale},
        )


def restored(platform: Platform, sale: str) -> set[str]:
    """Ids of the orders whose units were given back to Redis."""
    return platform.stock.returned_orders(sale)
