"""Changing `segments` on a live sale: the sale is held (purchases 503), what is in flight
reaches SQL, and every segment is loaded afresh from SQL's figures. Nothing is lost or
doubled, the per-user limit still holds, and a respread cut short finishes when run again."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio

from flashsale.persist import persist_reservation
from flashsale.sales import reload_from_sql
from flashsale.spec import SaleSpec
from flashsale.stock import AsyncStock, Outcome
from flashsale.stock.hotpath import Unavailable
from tests.conftest import FLASHSALE, Platform
from tests.helpers.wait import wait_for


def reserve_at_home(platform: Platform, sale: str, user: str) -> str:
    order_id = str(uuid.uuid4())
    segment = platform.stock.segment_of(sale, user)
    result = platform.stock.reserve(segment, user, 1, order_id)
    assert result.outcome is Outcome.ACCEPTED, result
    return order_id


def persist_all(platform: Platform, sale: str) -> None:
    for segment in platform.stock.segment_names(sale):
        for order_id in platform.stock.stale_reservations(segment, -10_000):
            persist_reservation(platform.sessions, platform.stock, segment, order_id)


def live_in_sql(platform: Platform, sale: str) -> int:
    return sum(o["quantity"] for o in platform.orders(sale) if o["status"] == "pending_payment")


def exact(platform: Platform, sale: str, total: int, segments: int) -> None:
    f = platform.stock.sale_in_redis(sale)
    assert (f.total, f.segments, f.moving) == (total, segments, False), f
    assert f.remaining + f.inflight + f.live == total, f
    assert f.live == live_in_sql(platform, sale), f
    assert platform.stock.open_loans(sale) == []


def spec(**changes: object) -> SaleSpec:
    doc = {"sku": "S", "stock": 40, "perUserLimit": 2, "rateLimit": {"requestsPerSecond": 0}}
    return SaleSpec.model_validate(doc | changes)


async def buy(platform: Platform, sale: str, user: str) -> Outcome:
    fast = AsyncStock(redis.asyncio.Redis.from_url(platform.redis_url))
    try:
        await fast.sync_clock()
        return (await fast.reserve(sale, user, 1, str(uuid.uuid4()))).outcome
    finally:
        await fast.close()


async def test_a_live_sale_is_respread(platform: Platform) -> None:
    sale = platform.sale(stock=40, segments=2, perUserLimit=2)
    greedy = [f"g{i}" for i in range(6)]
    for user in greedy:
        for _ in range(2):
            reserve_at_home(platform, sale, user)
    persist_all(platform, sale)
    # A loan in flight when the respread starts must credit nothing afterwards.
    loan = platform.stock.lend(sale, lender=0, borrower=1, units=3)
    assert loan is not None
    reserve_at_home(platform, sale, "late")  # still in the outbox when the respread starts

    async def worker_catches_up() -> None:
        await asyncio.sleep(0.5)
        persist_all(platform, sale)

    catching_up = asyncio.ensure_future(worker_catches_up())
    left = await asyncio.to_thread(
        reload_from_sql, platform.sessions, platform.stock, sale, spec(segments=5), 10.0, 0.2
    )
    await catching_up
    assert left == 40 - 13
    exact(platform, sale, 40, 5)
    platform.stock.credit(sale, 1, [loan])
    assert platform.stock.remaining(sale) == 27
    # The per-user limit holds across the respread: shoppers' holdings moved home.
    for user in greedy:
        assert await buy(platform, sale, user) is Outcome.LIMIT_REACHED
    assert await buy(platform, sale, "late") is Outcome.ACCEPTED
    assert await buy(platform, sale, "late") is Outcome.LIMIT_REACHED
    assert await buy(platform, sale, "new") is Outcome.ACCEPTED


async def test_a_respread_cut_short_holds_the_sale_and_finishes_when_run_again(
    platform: Platform,
) -> None:
    sale = platform.sale(stock=20, segments=3, perUserLimit=5)
    for i in range(7):
        reserve_at_home(platform, sale, f"u{i}")
    persist_all(platform, sale)
    # The mover died right after removing the old keys, before loading the new ones.
    platform.stock.hold(sale)
    platform.stock.remove_sale(sale, keep_meta=True)
    with pytest.raises(Unavailable):
        await buy(platform, sale, "someone")
    # Applying the spec again finishes the respread (from the top: it is still held).
    platform.sale(sale, sku="SKU-1", stock=20, segments=4, perUserLimit=5)
    exact(platform, sale, 20, 4)
    assert platform.stock.remaining(sale) == 13
    assert await buy(platform, sale, "someone") is Outcome.ACCEPTED


def test_killing_the_respread_while_it_waits_for_the_workers(
    platform: Platform, workdir: Path
) -> None:
    sale = platform.sale(stock=30, segments=2, perUserLimit=5)
    for i in range(5):
        reserve_at_home(platform, sale, f"w{i}")
    path = workdir / "respread.yaml"
    path.write_text(
        "apiVersion: flashsale.dev/v1alpha1\nkind: FlashSale\n"
        f"metadata: {{name: {sale}}}\n"
        "spec: {sku: SKU-1, stock: 30, perUserLimit: 5, segments: 6,"
        " rateLimit: {requestsPerSecond: 0, burst: 1}}\n"
    )
    mover = subprocess.Popen(
        [FLASHSALE, "sale", "apply", "-f", str(path)],
        env=platform.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: platform.stock.sale_in_redis(sale).moving, timeout=30)
    time.sleep(0.5)
    mover.send_signal(signal.SIGKILL)
    mover.wait(timeout=10)
    # Held: no purchase is decided, the reservations in flight are all still there.
    figures = platform.stock.sale_in_redis(sale)
    assert figures.moving and figures.outbox == 5 and figures.segments == 2
    persist_all(platform, sale)  # the workers catch up
    out = subprocess.run(
        [FLASHSALE, "sale", "apply", "-f", str(path)],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    exact(platform, sale, 30, 6)
    assert platform.stock.remaining(sale) == 25
