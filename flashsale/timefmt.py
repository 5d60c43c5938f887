"""Timestamps as every answer writes them: RFC 3339, UTC, `Z`, milliseconds.

The same instant reaches an answer from Redis (epoch milliseconds, the reserve script's
clock) or from PostgreSQL (a `timestamptz`, in whatever time zone the session has), so
both go through here and come out as the same text: `2030-01-01T09:00:00.000Z`. Times
are kept to the millisecond everywhere, so three fixed digits lose nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms_of(moment: datetime) -> int:
    """Milliseconds since the epoch, to the nearest one; a naive `moment` is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    micros = (moment - EPOCH) // timedelta(microseconds=1)
    return (micros + 500) // 1000


def rfc3339_ms(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 in UTC with `Z`."""
    m = EPOCH + ms * _MS
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond // 1000:03d}Z"
    )


def rfc3339(moment: datetime) -> str:
    """An instant as RFC 3339 in UTC with `Z` (a naive `moment` is taken as UTC)."""
    return rfc3339_ms(epoch_ms_of(moment))
