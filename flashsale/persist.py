"""Persisting reservations: many of one sale to a transaction, each exactly once.

This is what workers spend their time on, so it is written for throughput: one Redis
round trip reads the reservations, one SQL statement inserts them and raises the sale's
live units, a commit, and one script call takes them off the outbox. The rows travel as
one JSON document, which PostgreSQL unpacks far faster than the driver adapts arrays.

A transaction of many shoppers' orders must not fail for one of them. A reservation that
cannot be an order (checked before the statement, or refused by PostgreSQL for its own
content) becomes a dead letter and gives its units back, and the others are stored: when
the statement fails for its data, each reservation is tried alone to find which."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.models import OrderStatus
from flashsale.deadletters import DEAD, bury_reservation
from flashsale.ids import user_id_problem
from flashsale.stock import Stock, sale_of

log = logging.getLogger(__name__)

# Failures that belong to the rows themselves, not to the database being away: retrying
# cannot help, and trying the rows one by one finds the one at fault.
ROW_FAULTS = (DataError, IntegrityError, orjson.JSONEncodeError)


# Insert the new orders and, in the same statement, add their units to the sale's live
# units if they all fit within its stock (the usual case). `claimed` is false when they
# do not: the caller then shares the room out order by order.
_INSERT = text(
    """
WITH r AS (
    SELECT * FROM json_to_recordset(CAST(:rows AS json))
        AS r(id uuid, user_id text, quantity int, reserved_at bigint, expires_at bigint)
), new AS (
    INSERT INTO orders (id, sale, user_id, quantity, status, reserved_at, expires_at)
    SELECT id, :sale, user_id, quantity, :status,
           to_timestamp(reserved_at / 1000.0), to_timestamp(expires_at / 1000.0)
    FROM r
    ON CONFLICT (id) DO NOTHING
    RETURNING id, quantity
), units AS (
    SELECT coalesce(sum(quantity), 0) AS n FROM new
), claim AS (
    UPDATE sales SET live_units = live_units + units.n, updated_at = now()
    FROM units
    WHERE name = :sale AND units.n > 0 AND live_units + units.n <= stock
    RETURNING 1
)
SELECT coalesce(array_agg(CAST(new.id AS text)), '{}'), (SELECT count(*) FROM claim) > 0
FROM new
"""
)
STATUSES = text("SELECT CAST(id AS text), status FROM orders WHERE id = ANY(CAST(:ids AS uuid[]))")
ROOM = text("SELECT stock - live_units FROM sales WHERE name = :sale FOR UPDATE")
CLAIM = text("UPDATE sales SET live_units = live_units + :n, updated_at = now() WHERE name = :sale")
REJECT = text("UPDATE orders SET status = :status WHERE id = ANY(CAST(:ids AS uuid[]))")


def persist_reservation(
    sessions: sessionmaker[Session], stock: Stock, sale: str, order_id: str
) -> str | None:
    """Write one reservation as an order, once; returns its status, None if unknown."""
    return persist_reservations(sessions, stock, sale, [order_id]).get(order_id)


@dataclass(frozen=True, slots=True)
class _Row:
    order_id: str
    user: str
    quantity: int
    reserved_at: int
    expires_at: int

    def doc(self) -> dict[str, Any]:
        return {
            "id": self.order_id,
            "user_id": self.user,
            "quantity": self.quantity,
            "reserved_at": self.reserved_at,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class _Unfit:
    """A reservation that can never be an order, and why."""

    order_id: str
    user: object
    quantity: object
    reason: str


def _row(order_id: str, values: list[bytes]) -> _Row | _Unfit:
    user_raw, qty, reserved_at, expires_at = values[:4]
    try:
        user = user_raw.decode()
    except UnicodeDecodeError:
        return _Unfit(order_id, user_raw, qty, "the user id is not UTF-8")
    problem = user_id_problem(user)
    if problem is not None:
        return _Unfit(order_id, user, qty, problem)
    try:
        uuid.UUID(order_id)
        row = _Row(order_id, user, int(qty), int(reserved_at), int(expires_at))
    except (ValueError, TypeError):
        return _Unfit(order_id, user, qty, "the reservation's id or figures are malformed")
    if row.quantity <= 0:
        return _Unfit(order_id, user, row.quantity, "the quantity is not positive")
    return row


def persist_reservations(
    sessions: sessionmaker[Session], stock: Stock, segment: str, order_ids: Iterable[str]
) -> dict[str, str]:
    """Write reservations of one sale segment (the sale itself when it has one) as orders,
    once, in one transaction; returns the
    status of each (ids that Redis does not know are left out; `dead` for a reservation
    that became a dead letter).

    The insert is keyed by the reservation id, so a redelivered task finds its rows and
    does nothing. In the same transaction the sale's live units are raised only as far
    as its stock: should Redis ever admit too much (a failover that lost writes), the
    excess orders are stored as rejected and never become payable."""
    sale = sale_of(segment)
    rows: list[_Row] = []
    unfit: list[_Unfit] = []
    settled: dict[str, str] = {}
    for order_id, values in stock.read_reservations(segment, order_ids):
        if values[4] == DEAD.encode():  # put aside before: nothing more to do
            settled[order_id] = DEAD
            continue
        parsed = _row(order_id, values)
        if isinstance(parsed, _Row):
            rows.append(parsed)
        else:
            unfit.append(parsed)
    statuses: dict[str, str] = {}
    if rows:
        try:
            statuses = _store(sessions, sale, rows)
        except ROW_FAULTS as exc:
            log.warning(
                "storing %d reservations of sale %s together failed (%s); storing them one by one",
                len(rows),
                sale,
                type(exc).__name__,
            )
            statuses, refused = _store_one_by_one(sessions, sale, rows)
            unfit += refused
    if statuses:
        stock.ack_many(
            segment, {oid: status == OrderStatus.REJECTED for oid, status in statuses.items()}
        )
    for bad in unfit:
        bury_reservation(sessions, stock, segment, bad.order_id, bad.user, bad.quantity, bad.reason)
        statuses[bad.order_id] = DEAD
    return statuses | settled


def _store(sessions: sessionmaker[Session], sale: str, rows: Sequence[_Row]) -> dict[str, str]:
    with sessions.begin() as session:
        return _insert_orders(session.connection(), sale, rows)


def _store_one_by_one(
    sessions: sessionmaker[Session], sale: str, rows: Sequence[_Row]
) -> tuple[dict[str, str], list[_Unfit]]:
    statuses: dict[str, str] = {}
    refused: list[_Unfit] = []
    for row in rows:
        try:
            statuses |= _store(sessions, sale, [row])
        except ROW_FAULTS as exc:
            reason = f"PostgreSQL refused it: {str(exc.orig if hasattr(exc, 'orig') else exc)}"
            refused.append(_Unfit(row.order_id, row.user, row.quantity, reason[:500]))
    return statuses, refused


def _insert_orders(conn: Connection, sale: str, found: Sequence[_Row]) -> dict[str, str]:
    rows = orjson.dumps([row.doc() for row in found]).decode()
    params = {"rows": rows, "sale": sale, "status": OrderStatus.PENDING_PAYMENT.value}
    inserted_ids, claimed = conn.execute(_INSERT, params).one()
    inserted = set(inserted_ids)
    statuses: dict[str, str] = {}
    stored_before = [row.order_id for row in found if row.order_id not in inserted]
    if stored_before:  # redelivered: SQL has the status that counts
        rows_before = conn.execute(STATUSES, {"ids": stored_before})
        statuses.update({str(oid): str(status) for oid, status in rows_before})
    new = [(row.order_id, row.quantity) for row in found if row.order_id in inserted]
    rejected = set() if claimed else _share_out(conn, sale, new)
    for oid, _ in new:
        statuses[oid] = OrderStatus.REJECTED if oid in rejected else OrderStatus.PENDING_PAYMENT
    return statuses


def _share_out(conn: Connection, sale: str, new: Sequence[tuple[str, int]]) -> set[str]:
    """The new orders do not all fit: give the sale's remaining room to them in order and
    mark the rest rejected; returns the rejected ids."""
    if not new:
        return set()
    row: Any = conn.execute(ROOM, {"sale": sale}).first()
    room = row[0] if row is not None else 0
    taken, rejected = 0, []
    for oid, quantity in new:
        if taken + quantity <= room:
            taken += quantity
        else:
            rejected.append(oid)
    if taken:
        conn.execute(CLAIM, {"n": taken, "sale": sale})
    if rejected:
        conn.execute(
            REJECT, {"status": OrderStatus.REJECTED.value, "ids": [uuid.UUID(o) for o in rejected]}
        )
    return set(rejected)
