"""Per-sale worker pace: the operator tells a real Celery worker how fast to persist."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from flashsale.settings import Settings
from flashsale.worker.app import make_celery
from flashsale.worker.message import PERSIST_TASK
from tests.conftest import Platform, Process
from tests.operator.conftest import Cluster, Operator, eventually, operator_broker


@pytest.fixture
async def paced_worker(platform: Platform, workdir: Path) -> AsyncIterator[Process]:
    """A worker of its own on the operators' broker database."""
    env = {**platform.env, "FLASHSALE_BROKER_URL": operator_broker(platform)}
    worker = Process(
        ["worker", "--pool", "threads", "--concurrency", "1"], env, workdir / "paced-worker.log"
    ).start()
    await eventually(lambda: "ready" in worker.output(), timeout=60)
    yield worker
    worker.stop()


def rate_limits(broker: str) -> set[str]:
    """What each worker reports for the persist task, e.g. {"60/s"}. Blocking."""
    control = make_celery(Settings(broker_url=broker)).control
    replies = control.inspect(timeout=0.5).registered("rate_limit") or {}
    found = set()
    for tasks in replies.values():
        for line in tasks:
            if line.startswith(PERSIST_TASK) and "rate_limit=" in line:
                found.add(line.split("rate_limit=", 1)[1].rstrip("]"))
    return found


async def test_the_workers_pace_follows_the_active_sales(
    cluster: Cluster,
    platform: Platform,
    paced_worker: Process,
    start_operator: Callable[..., Awaitable[Operator]],
    sale_name: str,
) -> None:
    broker = operator_broker(platform)
    await start_operator()
    await cluster.create(
        sale_name, {"sku": "P", "stock": 5, "worker": {"replicas": 2, "ordersPerSecond": 120}}
    )

    async def wait_for_pace(rate: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while (found := await asyncio.to_thread(rate_limits, broker)) != {rate}:
            assert time.monotonic() < deadline, found

    await wait_for_pace("60/s")  # 120 orders/s shared by 2 worker replicas
    await cluster.delete(sale_name)
    await wait_for_pace("5000/s")  # no sale: back to FLASHSALE_ORDERS_PER_SECOND
