"""Dead letters: what can never be stored is put aside where an operator sees it.

A reservation that PostgreSQL refuses for its own content (a value no text column
holds, say) would otherwise be retried forever and hold back the orders it shares a
message with. Instead it gets a row in `dead_letters`, its units and its shopper's
per-user count go back to the sale (release.lua, exactly once), a WARNING line names it,
and the figures on /metrics count it. A task message that cannot even be read gets a row
too, with what could be read of it."""

from __future__ import annotations

import logging
import unicodedata
import uuid

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.models import DeadLetter
from flashsale.ids import REFUSED_CATEGORIES
from flashsale.stock import Stock, sale_of

log = logging.getLogger(__name__)

MAX_TEXT = 2000
DEAD = "dead"  # a reservation's state once it is a dead letter; it reads as rejected


def printable(value: object, limit: int = MAX_TEXT) -> str:
    """`value` as text any column and log line can hold: control, surrogate and
    separator characters written as escapes, bytes decoded with escapes, cut to `limit`."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    text = value if isinstance(value, str) else repr(value)
    cleaned = "".join(
        c if unicodedata.category(c) not in REFUSED_CATEGORIES else f"\\u{ord(c):04x}"
        for c in text[:limit]
    )
    return cleaned if len(text) <= limit else cleaned + "..."


def bury_reservation(
    sessions: sessionmaker[Session],
    stock: Stock,
    segment: str,
    order_id: str,
    user: object,
    quantity: object,
    reason: str,
) -> int:
    """Put a reservation of a sale segment aside for good and give its units back; returns
    the units returned now. Safe to repeat: one row per order, units returned once."""
    oid = _uuid(order_id)
    sale = sale_of(segment)
    with sessions.begin() as session:
        session.execute(
            insert(DeadLetter)
            .values(
                order_id=oid,
                sale=sale,
                user_id=printable(user, 1000),
                quantity=quantity if isinstance(quantity, int) else None,
                reason=printable(reason),
                payload=None if oid else printable(order_id),
            )
            .on_conflict_do_nothing(index_elements=[DeadLetter.order_id])
        )
    units = stock.release(segment, order_id)
    if units and oid:
        with sessions.begin() as session:
            session.execute(
                update(DeadLetter)
                .where(DeadLetter.order_id == oid)
                .values(units_returned=DeadLetter.units_returned + units)
            )
    log.warning(
        "dead letter: reservation %s of sale %s (user %s) can never be stored: %s; "
        "%d units returned to stock",
        printable(order_id, 80),
        sale,
        printable(user, 80),
        printable(reason, 300),
        units,
    )
    return units


def bury_message(sessions: sessionmaker[Session], reason: str, payload: object) -> None:
    """Put aside a task message that cannot be read or carries what no task takes."""
    with sessions.begin() as session:
        session.add(DeadLetter(reason=printable(reason), payload=printable(payload)))
    log.warning(
        "dead letter: task message put aside: %s: %s",
        printable(reason, 300),
        printable(payload, 200),
    )


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
