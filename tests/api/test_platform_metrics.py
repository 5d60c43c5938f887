"""The platform figures on /metrics: stock, outbox and persist lag, orders, queue depth;
a frozen worker shows as a growing persist lag while /readyz stays ready; a backing
service away is `flashsale_platform_figures_up 0`, never a failed scrape."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from flashsale.embedded import RedisServer, free_port
from flashsale.figures import CachedFigures, FiguresReader, PlatformFigures
from flashsale.persist import persist_reservations
from flashsale.runs import record_run
from tests.conftest import Platform, Process, auth, start_api, wait_for


def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def figure(base: str, name: str, **labels: str) -> float | None:
    return samples(base).get((name, tuple(sorted(labels.items()))))


def buy(base: str, sale: str, users: list[str]) -> list[str]:
    ids = []
    for user in users:
        r = httpx.post(f"{base}/v1/sales/{sale}/reservations", headers=auth(user), timeout=10)
        assert r.status_code == 202, r.text
        ids.append(r.json()["order_id"])
    return ids


@pytest.fixture(scope="module")
def queue() -> str:
    """A Celery queue no worker of the session consumes: what is accepted stays unpersisted."""
    return f"figures-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def idle_api(platform: Platform, workdir: Path, queue: str) -> Iterator[str]:
    proc, base = start_api(platform, workdir, "api-figures", FLASHSALE_QUEUE=queue)
    yield base
    proc.stop()


def test_snapshot_reads_redis_postgresql_and_the_broker(
    platform: Platform, idle_api: str, queue: str
) -> None:
    client = redis.Redis.from_url(platform.redis_url)
    reader = FiguresReader(platform.sessions, client, client, queue)
    sale = platform.sale(stock=10)
    before = reader.read()
    assert before.up, before.failed
    mine = next(s for s in before.sales if s.sale == sale)
    assert (mine.remaining, mine.outbox, mine.oldest_age_seconds) == (10, 0, 0.0)
    assert mine.orders == {} and mine.returned_units == 0

    ids = buy(idle_api, sale, ["s1", "s2", "s3"])
    time.sleep(0.3)
    figures = reader.read()
    mine = next(s for s in figures.sales if s.sale == sale)
    assert (mine.remaining, mine.outbox) == (7, 3)
    assert mine.oldest_age_seconds is not None and mine.oldest_age_seconds >= 0.2
    assert figures.queue == queue and (figures.queue_messages or 0) >= 1

    persist_reservations(platform.sessions, platform.stock, sale, ids)
    mine = next(s for s in reader.read().sales if s.sale == sale)
    assert (mine.outbox, mine.oldest_age_seconds) == (0, 0.0)
    assert mine.orders == {"pending_payment": 3} and mine.order_units == {"pending_payment": 3}

    # Dead letters are counted by sale, once the table is there (a later migration).
    with platform.sessions.begin() as session:
        if session.scalar(text("SELECT to_regclass('dead_letters') IS NOT NULL")):
            session.execute(
                text("INSERT INTO dead_letters (sale, reason) VALUES (:s, 'test'), (NULL, 'x')"),
                {"s": sale},
            )
            expected = {sale: 1}
        else:
            expected = {}
    dead = reader.read().dead_letters or {}
    assert {k: v for k, v in dead.items() if k == sale} == expected
    assert dead.get("", 0) >= len(expected)

    # A run the reaper recorded is read back through flashsale/runs.py.
    record_run(client, "reaper", ok=True)
    assert reader.read().loops["reaper"].runs >= 1
    client.close()


def test_the_cache_reads_once_per_interval() -> None:
    reads: list[float] = []

    def read() -> PlatformFigures:
        reads.append(time.monotonic())
        return PlatformFigures()

    cached = CachedFigures(read, max_age=0.5)
    for _ in range(20):
        cached()
    assert len(reads) == 1
    time.sleep(0.6)
    cached()
    assert len(reads) == 2


def test_metrics_show_stock_outbox_lag_queue_and_orders(
    platform: Platform, idle_api: str, queue: str
) -> None:
    sale = platform.sale(stock=10)
    ids = buy(idle_api, sale, ["m1", "m2", "m3", "m4"])

    def shown() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = samples(idle_api)
        return found if (("flashsale_outbox_reservations", (("sale", sale),))) in found else None

    found = wait_for(shown, timeout=10)
    assert found[("flashsale_platform_figures_up", ())] == 1
    assert found[("flashsale_sale_units", (("sale", sale), ("state", "remaining")))] == 6
    assert found[("flashsale_outbox_reservations", (("sale", sale),))] == 4
    assert found[("flashsale_queue_messages", (("queue", queue),))] >= 1
    first_age = found[("flashsale_outbox_oldest_age_seconds", (("sale", sale),))]
    # The oldest reservation keeps ageing while nobody persists it (figures cached ~3 s).
    wait_for(
        lambda: (
            (figure(idle_api, "flashsale_outbox_oldest_age_seconds", sale=sale) or 0)
            >= first_age + 2
        ),
        timeout=15,
    )

    persist_reservations(platform.sessions, platform.stock, sale, ids)
    wait_for(lambda: figure(idle_api, "flashsale_outbox_reservations", sale=sale) == 0, 15)
    found = samples(idle_api)
    assert found[("flashsale_outbox_oldest_age_seconds", (("sale", sale),))] == 0
    orders = {
        status: found[("flashsale_orders", (("sale", sale), ("status", status)))]
        for status in ("pending_payment", "paid", "expired", "rejected")
    }
    assert orders == {"pending_payment": 4, "paid": 0, "expired": 0, "rejected": 0}
    assert found[("flashsale_returned_units_total", (("sale", sale),))] == 0
    assert found[("flashsale_dead_letters_total", (("sale", sale),))] == 0


def test_a_frozen_worker_shows_as_persist_lag_while_ready_stays_200(
    platform: Platform, workdir: Path
) -> None:
    queue = f"stall-{uuid.uuid4().hex[:8]}"
    env = platform.env | {"FLASHSALE_QUEUE": queue}
    worker = Process(
        ["worker", "--pool", "threads", "--concurrency", "2"], env, workdir / f"{queue}.log"
    ).start()
    api, base = start_api(platform, workdir, f"api-{queue}", FLASHSALE_QUEUE=queue)
    try:
        wait_for(lambda: "ready" in worker.output(), timeout=60)
        sale = platform.sale(stock=20)
        buy(base, sale, ["f0"])
        wait_for(lambda: len(platform.orders(sale)) == 1, timeout=30)
        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGSTOP)
        try:
            buy(base, sale, ["f1", "f2", "f3"])
            wait_for(
                lambda: (figure(base, "flashsale_outbox_oldest_age_seconds", sale=sale) or 0) > 3,
                timeout=20,
            )
            assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
            assert figure(base, "flashsale_outbox_reservations", sale=sale) == 3
            assert len(platform.orders(sale)) == 1  # nothing written meanwhile
        finally:
            os.killpg(worker.proc.pid, signal.SIGCONT)
        wait_for(lambda: figure(base, "flashsale_outbox_reservations", sale=sale) == 0, 30)
        assert figure(base, "flashsale_outbox_oldest_age_seconds", sale=sale) == 0
        assert figure(base, "flashsale_orders", sale=sale, status="pending_payment") == 4
    finally:
        api.stop()
        worker.stop()


def test_metrics_answer_with_figures_down_when_redis_or_postgresql_is_away(
    platform: Platform, workdir: Path
) -> None:
    # PostgreSQL unreachable: SQL figures are left out, the broker's queue is still read.
    no_database = f"postgresql://flashsale@127.0.0.1:{free_port()}/flashsale"
    api, base = start_api(platform, workdir, "api-no-database", FLASHSALE_DATABASE_URL=no_database)
    try:
        started = time.monotonic()
        found = samples(base)
        assert time.monotonic() - started < 5
        assert found[("flashsale_platform_figures_up", ())] == 0
        assert not any(name == "flashsale_orders" for name, _ in found)
        assert ("flashsale_queue_messages", (("queue", "flashsale.orders"),)) in found
    finally:
        api.stop()

    # Redis (stock and broker) stopped under a running API.
    server = RedisServer(workdir / f"redis-{uuid.uuid4().hex[:6]}", appendonly=False).start()
    api, base = start_api(platform, workdir, "api-no-redis", FLASHSALE_REDIS_URL=server.url)
    try:
        sale = platform.sale(stock=5)  # in SQL (shared), not in this Redis
        assert figure(base, "flashsale_platform_figures_up") == 1
        server.stop()
        time.sleep(3.5)  # past the cached read
        started = time.monotonic()
        found = samples(base)
        assert time.monotonic() - started < 5
        assert found[("flashsale_platform_figures_up", ())] == 0
        assert ("flashsale_orders", (("sale", sale), ("status", "paid"))) in found
        assert ("flashsale_outbox_reservations", (("sale", sale),)) not in found
    finally:
        api.stop()
        server.stop()
