"""Per-sale worker pace: the operator writes each worker's pace to the broker's Redis,
keeps it fresh while sales run, and deletes it when none does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
import redis

from flashsale.handoff import PACE_TTL_SECONDS, WORKER_PACE_KEY
from flashsale.operator.pace_setter import REWRITE_SECONDS, PaceSetter
from tests.conftest import Platform
from tests.helpers.wait import eventually
from tests.operator.conftest import Cluster, Operator, operator_broker


@pytest.fixture
def broker(platform: Platform) -> Iterator[redis.Redis]:
    """The operators' broker database, without a pace before and after the test."""
    client = redis.Redis.from_url(operator_broker(platform))
    client.delete(WORKER_PACE_KEY)
    yield client
    client.delete(WORKER_PACE_KEY)
    client.close()


async def test_the_workers_pace_follows_the_active_sales(
    cluster: Cluster,
    broker: redis.Redis,
    start_operator: Callable[..., Awaitable[Operator]],
    sale_name: str,
) -> None:
    broker.set(WORKER_PACE_KEY, "7")  # left by an earlier operator: replaced, never kept
    await start_operator()
    await cluster.create(
        sale_name, {"sku": "P", "stock": 5, "worker": {"replicas": 2, "ordersPerSecond": 120}}
    )

    await eventually(lambda: broker.get(WORKER_PACE_KEY) == b"60")  # 120/s over 2 replicas
    assert 0 < broker.ttl(WORKER_PACE_KEY) <= PACE_TTL_SECONDS
    await cluster.delete(sale_name)
    # No sale: the key goes, and each worker is back to FLASHSALE_ORDERS_PER_SECOND.
    await eventually(lambda: not broker.exists(WORKER_PACE_KEY))


def test_pace_is_written_on_change_and_refreshed_before_it_expires(broker: redis.Redis) -> None:
    now = [1000.0]
    setter = PaceSetter(broker, clock=lambda: now[0])

    broker.set(WORKER_PACE_KEY, "7")
    assert setter.apply(None)  # at start: a pace left behind is deleted
    assert not broker.exists(WORKER_PACE_KEY)
    assert not setter.apply(None)  # once

    assert setter.apply(60.0)
    assert broker.get(WORKER_PACE_KEY) == b"60"
    assert 0 < broker.ttl(WORKER_PACE_KEY) <= PACE_TTL_SECONDS

    broker.expire(WORKER_PACE_KEY, 5)
    now[0] += REWRITE_SECONDS - 1
    assert not setter.apply(60.0)  # unchanged and fresh: not written
    assert broker.ttl(WORKER_PACE_KEY) <= 5

    now[0] += 1
    assert setter.apply(60.0)  # unchanged but old: written again, the TTL renewed
    assert broker.ttl(WORKER_PACE_KEY) > 5

    assert setter.apply(12.5)  # changed: written at once
    assert broker.get(WORKER_PACE_KEY) == b"12.5"

    assert setter.apply(None)
    assert not broker.exists(WORKER_PACE_KEY)
    broker.set(WORKER_PACE_KEY, "7")
    assert not setter.apply(None)  # deleted once, not on every round
    assert broker.get(WORKER_PACE_KEY) == b"7"
