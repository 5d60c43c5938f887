"""Creating, updating and reading sales: SQL row and Redis stock together.

`apply_sale` is the one loader: tests, `flashsale sale apply` and the operator all call it,
so they can never disagree about what a spec means."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.models import LIVE_STATUSES, Order, OrderStatus, Sale
from flashsale.phase import Phase, sale_phase
from flashsale.spec import SaleSpec, WaitingRoom, epoch_ms, is_valid_sale_name
from flashsale.stock import RoomLimits, SaleLimits, SoldInSql, Stock, StockLoadError
from flashsale.timefmt import rfc3339

# The longest a reserve call may wait for Redis (the API's hot-path socket timeout, or the
# batch timeout without one): a call sent before a hold is past its deadline after this.
HOT_PATH_DEADLINE_SECONDS = 5.0


class InvalidSale(ValueError):
    """The sale's name or spec cannot be applied; the message says why."""


class SaleHeld(InvalidSale):
    """A respread or rebuild could not finish yet (reservations still on their way to
    SQL): the sale stays held, and applying it again later finishes it."""


def limits_of(spec: SaleSpec) -> SaleLimits:
    return SaleLimits(
        total=spec.stock,
        sku=spec.sku,
        starts_at_ms=epoch_ms(spec.starts_at),
        ends_at_ms=epoch_ms(spec.ends_at),
        paused=spec.paused,
        per_user_limit=spec.per_user_limit,
        rate_per_second=spec.rate_limit.requests_per_second,
        burst=spec.rate_limit.burst,
        payment_timeout_seconds=spec.payment_timeout_seconds,
        segments=spec.segments,
        room=room_limits(spec.waiting_room),
    )


def room_limits(room: WaitingRoom | None) -> RoomLimits | None:
    if room is None:
        return None
    return RoomLimits(
        opens_at_ms=epoch_ms(room.opens_at),
        draw=room.order == "draw",
        admit_per_second=room.admit_per_second,
        shopping_seconds=room.shopping_seconds,
        overbook=room.overbook,
    )


def apply_sale(sessions: sessionmaker[Session], stock: Stock, name: str, spec: SaleSpec) -> int:
    """Create or update sale `name`; returns the units still for sale in Redis.

    The SQL row is written first and committed only after Redis accepted the new stock,
    so a refused change leaves both as they were. Loading is idempotent, so applying the
    same spec twice (or after a crash between the two) changes nothing. When Redis has no
    such sale although SQL does (the sale was deleted, or Redis lost its data), its stock
    is rebuilt from the orders in SQL instead of starting full again."""
    if not is_valid_sale_name(name):
        raise InvalidSale(
            f"sale name {name!r} must be a lowercase DNS-1123 name (a-z, 0-9, '-', '.')"
        )
    if stock.has_sale(name) and stock.segments(name) != spec.segments:
        return reload_from_sql(sessions, stock, name, spec)
    return _apply(sessions, stock, name, spec)


def _apply(
    sessions: sessionmaker[Session], stock: Stock, name: str, spec: SaleSpec, afresh: bool = False
) -> int:
    values: dict[str, Any] = {
        "name": name,
        "sku": spec.sku,
        "stock": spec.stock,
        "per_user_limit": spec.per_user_limit,
        "payment_timeout_seconds": spec.payment_timeout_seconds,
        "starts_at": spec.starts_at,
        "ends_at": spec.ends_at,
        "paused": spec.paused,
        "spec": spec.as_document(),
    }
    with sessions.begin() as session:
        live = session.scalar(select(Sale.live_units).where(Sale.name == name).with_for_update())
        if live is not None and spec.stock < live:
            raise InvalidSale(
                f"sale {name!r}: stock cannot drop to {spec.stock}: {live} units are in orders"
            )
        upsert = insert(Sale).values(**values)
        session.execute(
            upsert.on_conflict_do_update(
                index_elements=[Sale.name],
                set_={k: upsert.excluded[k] for k in values if k != "name"}
                | {"updated_at": func.now()},
            )
        )
        sold = SoldInSql()
        if live is not None and (afresh or not stock.has_sale(name)):
            sold = sold_in_sql(session, name, live)
        try:
            if afresh:
                return stock.load_afresh(name, limits_of(spec), sold)
            return stock.load(name, limits_of(spec), sold)
        except StockLoadError as exc:
            raise InvalidSale(str(exc)) from exc


def sold_in_sql(session: Session, name: str, live_units: int) -> SoldInSql:
    """A sale's sold units as SQL knows them: for a sale Redis lost or had deleted."""
    held = session.execute(
        select(Order.user_id, func.sum(Order.quantity))
        .where(Order.sale == name, Order.status.in_(LIVE_STATUSES))
        .group_by(Order.user_id)
    ).all()
    unreturned = session.scalars(
        select(Order.id).where(
            Order.sale == name,
            Order.status == OrderStatus.EXPIRED,
            Order.restored_at.is_(None),
        )
    ).all()
    return SoldInSql(
        live_units=live_units,
        held=tuple((user, int(units)) for user, units in held),
        unreturned_expired=tuple(str(order_id) for order_id in unreturned),
    )


def rebuild_sale(
    sessions: sessionmaker[Session], stock: Stock, name: str, drain_seconds: float = 60.0
) -> int:
    """Rebuild a sale's Redis state from SQL, for a Redis that lost writes (a failover, a
    restart from an old snapshot). Returns the units for sale afterwards."""
    with sessions() as session:
        sale = session.get(Sale, name)
        if sale is None:
            raise InvalidSale(f"no sale named {name!r}")
        spec = SaleSpec.model_validate(sale.spec)
    waiting = stock.outbox_size(name)
    if waiting:
        raise InvalidSale(
            f"sale {name!r}: {waiting} reservations are on their way to "
            "SQL; let the workers (and `flashsale sweep`) catch up, then rebuild"
        )
    return reload_from_sql(sessions, stock, name, spec, drain_seconds)


def reload_from_sql(
    sessions: sessionmaker[Session],
    stock: Stock,
    name: str,
    spec: SaleSpec,
    drain_seconds: float = 60.0,
    quiet_seconds: float = HOT_PATH_DEADLINE_SECONDS,
) -> int:
    """Load a sale into Redis afresh from `spec` and the orders in SQL: how a sale is
    respread over another number of segments, and rebuilt after Redis lost writes.
    Returns the units for sale afterwards.

    The sale is held (purchases answered "try again", 503), what is in flight reaches SQL,
    reserve calls sent before the hold are past their deadlines, its keys go, and every
    segment is loaded from SQL's figures in a new epoch. Each step can be repeated: a
    respread cut short (the process killed) leaves the sale held, and running it again
    finishes it; no unit is lost or doubled, since SQL's figures are the truth at rest.
    Idempotency keys and rate buckets are forgotten."""
    held_at = time.monotonic()
    stock.hold(name)
    deadline = held_at + drain_seconds
    while stock.outbox_size(name) or time.monotonic() < held_at + quiet_seconds:
        if time.monotonic() > deadline:
            raise SaleHeld(
                f"sale {name!r} is held but reservations are still in flight after "
                f"{drain_seconds:.0f}s; run the workers and `flashsale sweep`, then apply "
                "again (purchases wait meanwhile)"
            )
        time.sleep(0.1)
    stock.remove_sale(name, keep_meta=True)
    return _apply(sessions, stock, name, spec, afresh=True)


@dataclass(frozen=True, slots=True)
class StockFigures:
    total: int
    remaining: int
    reserved: int
    pending_payment: int
    paid: int
    expired: int


@dataclass(frozen=True, slots=True)
class SaleStatus:
    name: str
    sku: str
    phase: Phase
    starts_at: str | None
    ends_at: str | None
    stock: StockFigures

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sale_names(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(Sale.name).order_by(Sale.name)))


def _units_by_status(session: Session, name: str) -> dict[str, int]:
    rows = session.execute(
        select(Order.status, func.sum(Order.quantity))
        .where(Order.sale == name)
        .group_by(Order.status)
    ).all()
    return {status: int(total) for status, total in rows}


def sale_status(sessions: sessionmaker[Session], stock: Stock, name: str) -> SaleStatus | None:
    """Phase and stock figures.

    remaining, reserved (in flight to SQL) and live units come from one atomic read of
    Redis, whose scripts move units between them in single steps, so they always add up
    to the total. SQL only splits live units into paid and pending payment (an order is
    paid in SQL, never un-paid), and counts the expired ones. A sale Redis no longer has
    (deleted, its orders kept) is read from SQL alone: its live units are SQL's, and
    what no live order holds is what remains."""
    with sessions() as session:
        sale = session.get(Sale, name)
        if sale is None:
            return None
        units = _units_by_status(session, name)
    redis_has = stock.sale_in_redis(name)
    total = redis_has.total if redis_has.total is not None else sale.stock
    live = redis_has.live if redis_has.exists else sale.live_units
    paid = units.get(OrderStatus.PAID, 0)
    remaining = redis_has.remaining if redis_has.exists else total - live
    phase = sale_phase(
        now_ms=redis_has.now_ms,
        starts_ms=epoch_ms(sale.starts_at),
        ends_ms=epoch_ms(sale.ends_at),
        paused=sale.paused,
        closed=not redis_has.exists or redis_has.closed,
        remaining=remaining,
    )
    return SaleStatus(
        name=sale.name,
        sku=sale.sku,
        phase=phase,
        starts_at=rfc3339(sale.starts_at) if sale.starts_at else None,
        ends_at=rfc3339(sale.ends_at) if sale.ends_at else None,
        stock=StockFigures(
            total=total,
            remaining=remaining,
            reserved=redis_has.inflight if redis_has.exists else 0,
            pending_payment=max(0, live - paid),
            paid=min(paid, live),
            expired=int(units.get(OrderStatus.EXPIRED, 0)),
        ),
    )
