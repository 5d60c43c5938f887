"""The FlashSale `status` the operator writes: pure functions from figures to dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flashsale.phase import Phase
from flashsale.sales import SaleStatus, StockFigures
from flashsale.stock.room import RoomFigures

INVALID = "Invalid"  # the phase of a spec the operator refused

STOCK_LOADED = "StockLoaded"
READY = "Ready"

PHASE_MESSAGES: dict[str, str] = {
    Phase.SCHEDULED: "waiting for startsAt",
    Phase.ACTIVE: "selling",
    Phase.SOLD_OUT: "no units left; expired orders may return some",
    Phase.ENDED: "the sale is over",
    Phase.PAUSED: "paused by spec.paused",
}


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes times."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stock_document(figures: StockFigures) -> dict[str, int]:
    return {
        "total": figures.total,
        "remaining": figures.remaining,
        "reserved": figures.reserved,
        "pendingPayment": figures.pending_payment,
        "paid": figures.paid,
        "expired": figures.expired,
    }


def room_document(figures: RoomFigures | None) -> dict[str, Any] | None:
    """status.waitingRoom: the queue's figures; a draw's commitment from the moment the room
    is set up, its seed only once the sale has started (Redis's clock decides). None for a
    sale without a waiting room, which removes the field from the status."""
    if figures is None:
        return None
    document: dict[str, Any] = {
        "waiting": figures.waiting,
        "admitted": figures.admitted,
        "admissions": figures.admissions,
        "expired": figures.expiries,
    }
    if figures.draw_commitment is not None:
        document["drawCommitment"] = figures.draw_commitment
    if figures.draw_seed is not None:
        document["drawSeed"] = figures.draw_seed
    return document


def condition(
    kind: str,
    ok: bool | None,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
    previous: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One condition; lastTransitionTime moves only when the status flips."""
    status = "Unknown" if ok is None else ("True" if ok else "False")
    since = timestamp(now)
    for old in previous:
        if old.get("type") == kind and old.get("status") == status:
            since = str(old.get("lastTransitionTime") or since)
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def merge_conditions(
    previous: Sequence[Mapping[str, Any]], updates: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The previous conditions with `updates` replacing those of the same type."""
    replaced = {c["type"] for c in updates}
    kept = [dict(c) for c in previous if c.get("type") not in replaced]
    return sorted(kept + list(updates), key=lambda c: str(c.get("type")))


def live_status(
    sale: SaleStatus,
    generation: int,
    now: datetime,
    previous: Mapping[str, Any],
    room: RoomFigures | None = None,
) -> dict[str, Any]:
    """Status of a loaded sale: phase and figures from Redis and SQL, and its waiting room's
    figures when it has one (`waitingRoom: None` takes away those of a room since removed)."""
    conditions = previous.get("conditions") or []
    phase = str(sale.phase)
    return {
        "phase": phase,
        "message": PHASE_MESSAGES.get(phase, ""),
        "observedGeneration": generation,
        "stock": stock_document(sale.stock),
        "waitingRoom": room_document(room),
        "conditions": merge_conditions(
            conditions,
            [
                condition(
                    STOCK_LOADED,
                    True,
                    "Loaded",
                    f"{sale.stock.total} units loaded into Redis",
                    generation,
                    now,
                    conditions,
                ),
                condition(
                    READY,
                    phase != Phase.ENDED,
                    phase,
                    PHASE_MESSAGES.get(phase, ""),
                    generation,
                    now,
                    conditions,
                ),
            ],
        ),
    }


def invalid_status(
    reason: str, message: str, generation: int, now: datetime, previous: Mapping[str, Any]
) -> dict[str, Any]:
    """Status of a spec the operator refused: phase Invalid and conditions that say why."""
    conditions = previous.get("conditions") or []
    return {
        "phase": INVALID,
        "message": message,
        "observedGeneration": generation,
        "conditions": merge_conditions(
            conditions,
            [
                condition(STOCK_LOADED, False, reason, message, generation, now, conditions),
                condition(READY, False, reason, message, generation, now, conditions),
            ],
        ),
    }


def unavailable_status(
    message: str, generation: int, now: datetime, previous: Mapping[str, Any]
) -> dict[str, Any]:
    """Redis or PostgreSQL cannot be reached: the sale is not Ready; phase stays as it was."""
    conditions = previous.get("conditions") or []
    return {
        "message": message,
        "conditions": merge_conditions(
            conditions,
            [condition(READY, False, "BackendUnavailable", message, generation, now, conditions)],
        ),
    }


def changed_fields(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level status fields of `wanted` that differ from `current` (empty: no patch),
    so a refresh that found nothing new writes nothing to the API server."""
    return {key: value for key, value in wanted.items() if current.get(key) != value}
