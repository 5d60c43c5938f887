"""A sale's phase, derived from its settings, the clock and its remaining stock."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    SCHEDULED = "Scheduled"
    ACTIVE = "Active"
    SOLD_OUT = "SoldOut"
    ENDED = "Ended"
    PAUSED = "Paused"


def sale_phase(
    now_ms: int, starts_ms: int, ends_ms: int, paused: bool, closed: bool, remaining: int
) -> Phase:
    if closed or (ends_ms and now_ms >= ends_ms):
        return Phase.ENDED
    if paused:
        return Phase.PAUSED
    if starts_ms and now_ms < starts_ms:
        return Phase.SCHEDULED
    if remaining <= 0:
        return Phase.SOLD_OUT
    return Phase.ACTIVE
