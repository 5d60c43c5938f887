"""The 'publish' handoff, and outages: with the broker down a reservation is still accepted,
waits in the outbox and sweep recovers it; with the database down the API answers 503."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from flashsale.embedded import free_port
from flashsale.stock.keys import SaleKeys
from flashsale.sweeper import sweep
from tests.conftest import Platform, Process, auth, start_api, wait_for


def test_publish_handoff_reaches_the_worker(
    platform: Platform, workdir: Path, worker: Process
) -> None:
    proc, base = start_api(platform, workdir, "api-publish", FLASHSALE_HANDOFF="publish")
    try:
        sale = platform.sale(stock=3)
        r = httpx.post(f"{base}/v1/sales/{sale}/reservations", headers=auth("pat"))
        assert r.status_code == 202
        wait_for(lambda: len(platform.orders(sale)) == 1)
        assert platform.redis.zcard(SaleKeys(sale).outbox) == 0
    finally:
        proc.stop()


def test_broker_down_leaves_reservation_for_sweep(
    platform: Platform, workdir: Path, worker: Process
) -> None:
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    proc, base = start_api(
        platform,
        workdir,
        "api-dead-broker",
        FLASHSALE_HANDOFF="publish",
        FLASHSALE_BROKER_URL=dead_broker,
    )
    try:
        sale = platform.sale(stock=3)
        started = time.monotonic()
        r = httpx.post(f"{base}/v1/sales/{sale}/reservations", headers=auth("quinn"), timeout=10)
        assert r.status_code == 202
        assert time.monotonic() - started < 3  # answered within the publish timeout
        order = r.json()["order_id"]
        assert httpx.get(f"{base}/readyz").status_code == 503
        time.sleep(1.5)
        assert platform.orders(sale) == []  # nobody got the task
        assert platform.redis.zscore(SaleKeys(sale).outbox, order) is not None
        published = sweep(
            platform.sessions,
            platform.stock,
            platform.redis,
            "flashsale.orders",
            older_than_seconds=1,
        )
        assert published >= 1
        wait_for(lambda: [str(o["id"]) for o in platform.orders(sale)] == [order])
        assert platform.redis.zscore(SaleKeys(sale).outbox, order) is None
    finally:
        proc.stop()


def test_database_down_is_503_not_500(platform: Platform, workdir: Path) -> None:
    dead_db = f"postgresql://flashsale@127.0.0.1:{free_port()}/flashsale"
    proc, base = start_api(platform, workdir, "api-dead-db", FLASHSALE_DATABASE_URL=dead_db)
    try:
        sale = platform.sale(stock=3)
        # The reservation path does not need the database at all.
        r = httpx.post(f"{base}/v1/sales/{sale}/reservations", headers=auth("rita"), timeout=20)
        assert r.status_code == 202
        got = httpx.get(
            f"{base}/v1/orders/{r.json()['order_id']}", headers=auth("rita"), timeout=20
        )
        assert got.status_code == 503 and got.json()["error"] == "unavailable"
        assert httpx.get(f"{base}/readyz", timeout=20).status_code == 503
    finally:
        proc.stop()
