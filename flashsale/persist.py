"""Persisting reservations: many of one sale to a transaction, each exactly once.

This is what workers spend their time on, so it is written for throughput: one Redis
round trip reads the reservations, one SQL statement inserts them and raises the sale's
live units, a commit, and one script call takes them off the outbox. The rows travel as
one JSON document, which PostgreSQL unpacks far faster than the driver adapts arrays."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import redis
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.models import OrderStatus
from flashsale.keys import SaleKeys
from flashsale.stock import Stock

FIELDS = ("user", "qty", "reserved_at", "expires_at")

# Insert the new orders and, in the same statement, add their units to the sale's live
# units if they all fit within its stock (the usual case). `claimed` is false when they
# do not: the caller then shares the room out order by order.
_INSERT = """
WITH r AS (
    SELECT * FROM json_to_recordset(%(rows)s::json)
        AS r(id uuid, user_id text, quantity int, reserved_at bigint, expires_at bigint)
), new AS (
    INSERT INTO orders (id, sale, user_id, quantity, status, reserved_at, expires_at)
    SELECT id, %(sale)s, user_id, quantity, %(status)s,
           to_timestamp(reserved_at / 1000.0), to_timestamp(expires_at / 1000.0)
    FROM r
    ON CONFLICT (id) DO NOTHING
    RETURNING id, quantity
), units AS (
    SELECT coalesce(sum(quantity), 0) AS n FROM new
), claim AS (
    UPDATE sales SET live_units = live_units + units.n, updated_at = now()
    FROM units
    WHERE name = %(sale)s AND units.n > 0 AND live_units + units.n <= stock
    RETURNING 1
)
SELECT coalesce(array_agg(new.id::text), '{}'), (SELECT count(*) FROM claim) > 0
FROM new
"""


def read_reservations(
    client: redis.Redis, sale: str, order_ids: Iterable[str]
) -> list[tuple[str, list[bytes]]]:
    """(order id, [user, qty, reserved_at, expires_at]) of each reservation Redis still
    has, oldest first, in one round trip; unknown ids are left out."""
    wanted = list(dict.fromkeys(order_ids))
    keys = SaleKeys(sale)
    pipe = client.pipeline(transaction=False)
    for order_id in wanted:
        pipe.hmget(keys.reservation(order_id), FIELDS)
    found = [
        (order_id, values)
        for order_id, values in zip(wanted, pipe.execute(), strict=True)
        if values[0] is not None
    ]
    # First come, first served: should stock fall short, the latest ones lose.
    found.sort(key=lambda item: (int(item[1][2]), item[0]))
    return found


def persist_reservation(
    sessions: sessionmaker[Session], stock: Stock, sale: str, order_id: str
) -> str | None:
    """Write one reservation as an order, once; returns its status, None if unknown."""
    return persist_reservations(sessions, stock, sale, [order_id]).get(order_id)


def persist_reservations(
    sessions: sessionmaker[Session], stock: Stock, sale: str, order_ids: Iterable[str]
) -> dict[str, str]:
    """Write reservations of one sale as orders, once, in one transaction; returns the
    status of each (ids that Redis does not know are left out).

    The insert is keyed by the reservation id, so a redelivered task finds its rows and
    does nothing. In the same transaction the sale's live units are raised only as far
    as its stock: should Redis ever admit too much (a failover that lost writes), the
    excess orders are stored as rejected and never become payable."""
    found = read_reservations(stock.client, sale, order_ids)
    if not found:
        return {}
    with sessions.begin() as session:
        statuses = _insert_orders(session.connection(), sale, found)
    stock.ack_many(sale, {oid: status == OrderStatus.REJECTED for oid, status in statuses.items()})
    return statuses


def _insert_orders(
    conn: Connection, sale: str, found: list[tuple[str, list[bytes]]]
) -> dict[str, str]:
    rows = orjson.dumps(
        [
            {
                "id": order_id,
                "user_id": user.decode(),
                "quantity": int(qty),
                "reserved_at": int(reserved_at),
                "expires_at": int(expires_at),
            }
            for order_id, (user, qty, reserved_at, expires_at) in found
        ]
    ).decode()
    params = {"rows": rows, "sale": sale, "status": OrderStatus.PENDING_PAYMENT.value}
    inserted_ids, claimed = conn.exec_driver_sql(_INSERT, params).one()
    inserted = set(inserted_ids)
    statuses: dict[str, str] = {}
    stored_before = [oid for oid, _ in found if oid not in inserted]
    if stored_before:  # redelivered: SQL has the status that counts
        rows_before = conn.exec_driver_sql(
            "SELECT id::text, status FROM orders WHERE id = ANY(%(ids)s::uuid[])",
            {"ids": stored_before},
        )
        statuses.update({str(oid): str(status) for oid, status in rows_before})
    new = [(oid, int(values[1])) for oid, values in found if oid in inserted]
    rejected = set() if claimed else _share_out(conn, sale, new)
    for oid, _ in new:
        statuses[oid] = OrderStatus.REJECTED if oid in rejected else OrderStatus.PENDING_PAYMENT
    return statuses


def _share_out(conn: Connection, sale: str, new: Sequence[tuple[str, int]]) -> set[str]:
    """The new orders do not all fit: give the sale's remaining room to them in order and
    mark the rest rejected; returns the rejected ids."""
    if not new:
        return set()
    row: Any = conn.exec_driver_sql(
        "SELECT stock - live_units FROM sales WHERE name = %(sale)s FOR UPDATE", {"sale": sale}
    ).first()
    room = row[0] if row is not None else 0
    taken, rejected = 0, []
    for oid, quantity in new:
        if taken + quantity <= room:
            taken += quantity
        else:
            rejected.append(oid)
    if taken:
        conn.exec_driver_sql(
            "UPDATE sales SET live_units = live_units + %(n)s, updated_at = now() "
            "WHERE name = %(sale)s",
            {"n": taken, "sale": sale},
        )
    if rejected:
        conn.exec_driver_sql(
            "UPDATE orders SET status = %(status)s WHERE id = ANY(%(ids)s::uuid[])",
            {"status": OrderStatus.REJECTED.value, "ids": [uuid.UUID(o) for o in rejected]},
        )
    return set(rejected)
