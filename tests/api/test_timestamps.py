"""Every time in an answer is RFC 3339 in UTC with `Z`, written the same way whichever
store it came from."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import httpx

from flashsale.timefmt import rfc3339, rfc3339_ms
from tests.conftest import Platform, auth, wait_for

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_expires_at_reads_the_same_in_every_answer(
    platform: Platform, client: httpx.AsyncClient, worker: object
) -> None:
    sale = platform.sale(stock=3, perUserLimit=3)
    headers = {**auth("clock"), "Idempotency-Key": "timestamps-1"}
    accepted = await client.post(f"/v1/sales/{sale}/reservations", headers=headers)
    assert accepted.status_code == 202, accepted.text
    expires_at = accepted.json()["expires_at"]
    assert RFC3339_Z.match(expires_at), expires_at
    order = accepted.json()["order_id"]

    # Through the route rather than the fast path: the same text.
    replay = await client.post(
        f"/v1/sales/{sale}/reservations",
        content=b'{"quantity": 1.0}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert replay.json()["order_id"] == order and replay.json()["expires_at"] == expires_at

    def stored() -> dict[str, str] | None:
        view: dict[str, str] = httpx.get(
            f"{client.base_url}/v1/orders/{order}", headers=auth("clock")
        ).json()
        return view if view["status"] == "pending_payment" else None

    # Read back from PostgreSQL once the worker has stored it.
    assert wait_for(stored)["expires_at"] == expires_at


async def test_sale_window_is_written_in_utc_with_z(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    paris = timezone(timedelta(hours=2))
    starts = datetime(2020, 6, 1, 11, 0, 0, 250000, tzinfo=paris)
    ends = datetime(2099, 6, 1, 11, 0, tzinfo=paris)
    sale = platform.sale(startsAt=starts.isoformat(), endsAt=ends.isoformat())
    status = (await client.get(f"/v1/sales/{sale}")).json()
    assert status["starts_at"] == "2020-06-01T09:00:00.250Z"
    assert status["ends_at"] == "2099-06-01T09:00:00.000Z"
    open_ended = (await client.get(f"/v1/sales/{platform.sale()}")).json()
    assert open_ended["starts_at"] is None and open_ended["ends_at"] is None


def test_one_formatter_for_both_stores() -> None:
    ms = 1_764_469_287_123
    from_redis = rfc3339_ms(ms)
    from_sql = rfc3339(
        datetime(2025, 11, 30, 3, 21, 27, 123000, tzinfo=timezone(timedelta(hours=1)))
    )
    assert from_redis == from_sql == "2025-11-30T02:21:27.123Z"
    # A float round trip that lands a microsecond short still reads as the same millisecond.
    assert (
        rfc3339(datetime.fromtimestamp(ms / 1000, tz=UTC) - timedelta(microseconds=1)) == from_redis
    )
    assert rfc3339(datetime(2030, 1, 1)) == "2030-01-01T00:00:00.000Z"  # naive: taken as UTC
