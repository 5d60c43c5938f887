"""Waiting rooms for tests: a moment relative to now, and a room's spec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def at(seconds: float) -> str:
    """RFC 3339 of now plus `seconds` (negative: in the past)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def room(**changes: object) -> dict[str, object]:
    """An open first-come room letting in 1,000 a second, 60 s to buy, no overbooking;
    `changes` override any field."""
    doc: dict[str, object] = {
        "opensAt": at(-1),
        "order": "fifo",
        "admitPerSecond": 1000,
        "shoppingSeconds": 60,
        "overbook": 1,
    }
    return doc | changes
