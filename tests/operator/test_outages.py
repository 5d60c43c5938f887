"""Redis away: the sale is not Ready and the operator retries; nothing is taken as a bad
spec, and nothing is lost when Redis comes back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from flashsale.embedded import RedisServer
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform
from tests.helpers.wait import eventually
from tests.operator.conftest import Cluster, Operator


class RestartableRedis:
    """A Redis of the test's own that can go away and come back on the same port, with its
    data (AOF written on shutdown)."""

    def __init__(self, folder: Path) -> None:
        self.server = RedisServer(folder, appendonly=True)
        self.folder = folder

    def start(self) -> None:
        self.server = RedisServer(self.folder, port=self.server.port, appendonly=True).start()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def own_redis(workdir: Path, sale_name: str) -> Iterator[RestartableRedis]:
    server = RestartableRedis(workdir / f"redis-{sale_name}")
    yield server
    server.stop()


def ready(cluster: Cluster, name: str) -> dict[str, Any]:
    for found in cluster.status(name).get("conditions", []):
        if found["type"] == "Ready":
            return dict(found)
    return {}


async def test_redis_away_means_not_ready_and_a_retry_not_a_refusal(
    cluster: Cluster,
    platform: Platform,
    start_operator: Callable[..., Awaitable[Operator]],
    own_redis: RestartableRedis,
    sale_name: str,
) -> None:
    url = own_redis.server.url  # nothing listens there yet
    await start_operator(FLASHSALE_REDIS_URL=url)
    await cluster.create(sale_name, {"sku": "R", "stock": 7})

    down = await eventually(lambda: ready(cluster, sale_name).get("reason") == "BackendUnavailable")
    assert down
    assert "phase" not in cluster.status(sale_name)  # not Invalid: the spec is fine

    own_redis.start()
    await eventually(lambda: cluster.status(sale_name).get("phase") == "Active")
    assert ready(cluster, sale_name)["status"] == "True"
    client = redis.Redis.from_url(url)
    assert client.get(SaleKeys(sale_name).stock) == b"7"

    own_redis.stop()  # in the middle of the sale
    await eventually(lambda: ready(cluster, sale_name).get("status") == "False")
    assert cluster.status(sale_name)["phase"] == "Active"  # the last known phase stays
    assert "Redis" in cluster.status(sale_name)["message"]

    own_redis.start()
    await eventually(lambda: ready(cluster, sale_name).get("status") == "True")
    assert client.get(SaleKeys(sale_name).stock) == b"7"  # back with its data
    assert cluster.status(sale_name)["stock"]["remaining"] == 7
    client.close()
