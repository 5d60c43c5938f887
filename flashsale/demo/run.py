"""Run the demo: platform up, sale on, two waves of shoppers, expiry, report. With a
waiting room, the crowd queues first (flashsale/demo/room_run.py)."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flashsale import clients
from flashsale.demo.chart import write_chart
from flashsale.demo.crowd import Crowd
from flashsale.demo.plan import DemoPlan
from flashsale.demo.report import DemoReport, build_report, master_shares, print_report
from flashsale.demo.room import answers_check, room_checks, room_document, room_report
from flashsale.demo.room_run import room_waves
from flashsale.demo.steps import persisted, until, with_progress
from flashsale.demo.timeline import Timeline, order_counts, sample_forever, sample_once
from flashsale.embedded import free_port
from flashsale.invariants import check_invariants
from flashsale.local.masters import master_of_segments, read_masters, work_between
from flashsale.local.platform import LocalPlatform, Loops
from flashsale.sales import apply_sale, sale_status
from flashsale.settings import Settings
from flashsale.spec import SaleSpec
from flashsale.stock import AsyncStock, Stock

SALE = "midnight-drop"
ANSWERS = "only answers the contract allows"


def sale_spec(plan: DemoPlan, now: datetime | None = None) -> SaleSpec:
    """The demo's sale; with a waiting room, the room opens `now` and the sale starts
    `room_lead_seconds` later."""
    doc: dict[str, Any] = {
        "sku": "TV-55-OLED",
        "stock": plan.stock,
        "perUserLimit": plan.per_user_limit,
        "paymentTimeoutSeconds": plan.payment_timeout_seconds,
        "rateLimit": {"requestsPerSecond": plan.rate_per_second, "burst": plan.burst},
        "segments": plan.segments,
    }
    if plan.waiting_room:
        opens = now or datetime.now(UTC)
        doc["startsAt"] = (opens + timedelta(seconds=plan.room_lead_seconds)).isoformat()
        doc["waitingRoom"] = room_document(plan, opens)
    return SaleSpec.model_validate(doc)


async def _waves(
    plan: DemoPlan,
    crowd: Crowd,
    timeline: Timeline,
    bar: Progress,
    rng: random.Random,
    marks: dict[str, float],
) -> float:
    """The sale without a waiting room: the first wave all at once, spammers hammering;
    unpaid orders expire; a second wave buys the returned units. Returns the first
    wave's seconds."""
    jobs: list[Awaitable[None]] = [
        crowd.shopper(
            1,
            f"shopper-{i}",
            rng.uniform(0, plan.arrival_seconds),
            rng.random() >= plan.never_pay,
            rng,
        )
        for i in range(plan.shoppers)
    ]
    jobs += [
        crowd.spammer(f"bot-{i}", plan.spam_clicks, rng.uniform(0, 0.5))
        for i in range(plan.spammers)
    ]
    clicks = plan.shoppers + plan.spammers * plan.spam_clicks
    began = time.monotonic()
    await with_progress(
        bar, "wave 1: shoppers and spammers", clicks, jobs, lambda: len(crowd.log.clicks)
    )
    first_wave_seconds = time.monotonic() - began
    accepted = len(crowd.log.accepted())

    await persisted(bar, "workers persist the orders", timeline, accepted)
    unpaid = accepted - len(crowd.log.paid_orders)
    first = min((c.at for c in crowd.log.accepted()), default=0.0)
    marks["first unpaid orders due"] = first + plan.payment_timeout_seconds
    reap = bar.add_task(
        f"unpaid orders expire ({plan.payment_timeout_seconds}s), units return",
        total=unpaid,
    )
    await until(
        timeline,
        lambda s: s.expired >= unpaid and s.returned >= unpaid,
        lambda s: bar.update(reap, completed=min(s.returned, unpaid)),
    )
    marks["second wave"] = crowd.log.now()
    second = [
        crowd.shopper(2, f"late-{i}", rng.uniform(0, 1.0), True, rng)
        for i in range(plan.second_wave)
    ]
    before = len(crowd.log.clicks)
    await with_progress(
        bar,
        "wave 2: the returned units",
        plan.second_wave,
        second,
        lambda: len(crowd.log.clicks) - before,
    )
    await persisted(bar, "last orders persisted", timeline, len(crowd.log.accepted()))
    return first_wave_seconds


async def _drive(
    plan: DemoPlan, platform: LocalPlatform, console: Console, seed: int, starts_at: float
) -> tuple[Crowd, Timeline, dict[str, float], float]:
    """The crowd against the platform, the sale sampled all along. `starts_at`: the
    sale's start (epoch seconds) when it has a waiting room."""
    rng = random.Random(seed)
    sessions = clients.database_at(platform.database_url)
    timeline = Timeline(SALE, plan.stock, started=time.monotonic(), segments=plan.segments)
    sampled = AsyncStock(clients.async_stock_redis_at(platform.redis_url, clients.Role.SERVICE))
    await sampled.sync_clock()  # a cluster client reads the slot map first
    # The room's figures are read with the sync client, in a thread, in the same sampler.
    room = Stock(clients.stock_redis_at(platform.redis_url)) if plan.waiting_room else None
    sampler = asyncio.create_task(sample_forever(timeline, sampled, sessions, room=room))
    marks: dict[str, float] = {}
    columns = (
        TextColumn("{task.description:<44}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    async with Crowd(platform.api_url, SALE, platform.jwt_secret, plan.connections) as crowd:
        crowd.log.started = timeline.started
        with Progress(*columns, console=console) as bar:
            if plan.waiting_room:
                starts = starts_at - time.time() + crowd.log.now()
                seconds = await room_waves(plan, crowd, timeline, bar, rng, marks, starts)
            else:
                seconds = await _waves(plan, crowd, timeline, bar, rng, marks)
    sampler.cancel()
    # The final state, for the chart; read twice, so that the first read counts as one
    # instant on a sale of many segments too (Timeline.instants).
    for _ in range(2):
        await sample_once(timeline, sampled, sessions, room)
    await sampled.close()
    if room:
        room.close()
    return crowd, timeline, marks, seconds


def run_demo(
    plan: DemoPlan, out_dir: Path, console: Console, seed: int = 7, redis_cluster: int = 0
) -> DemoReport:
    """The whole demo; its servers live in a temporary folder removed afterwards. With
    `redis_cluster` (N masters) stock is kept in a local Redis Cluster, each master with
    a replica, and the broker in a Redis of its own, as `flashsale up --redis-cluster N`."""
    data_dir = Path(tempfile.mkdtemp(prefix="flashsale-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, redis_url=None, database_url=None, broker_url=None)
    platform = LocalPlatform(
        settings,
        port=free_port(),
        log_dir=out_dir / "logs",
        loops=Loops(reap_every=1.0, sweep_every=5.0),
        redis_cluster=redis_cluster,
    )
    redis = f"Redis Cluster of {redis_cluster} masters" if redis_cluster else "one Redis"
    began = time.monotonic()
    try:
        with console.status(f"starting {redis}, PostgreSQL, the API, a worker, reaper, sweeper"):
            platform.start()
        console.print(f"platform up at {platform.api_url} (logs in {out_dir / 'logs'})")
        client = clients.stock_redis_at(platform.redis_url)
        stock = Stock(client)
        sessions = clients.database_at(platform.database_url)
        spec = sale_spec(plan)
        apply_sale(sessions, stock, SALE, spec)
        placement = master_of_segments(client, stock.segment_names(SALE))
        work_before = read_masters(client)
        starts_at = spec.starts_at.timestamp() if spec.starts_at else 0.0
        crowd, timeline, marks, first_wave_seconds = asyncio.run(
            _drive(plan, platform, console, seed, starts_at)
        )
        work = work_between(work_before, read_masters(client))
        status = sale_status(sessions, stock, SALE)
        assert status is not None
        checks = check_invariants(
            crowd.log, timeline.instants(), status, sessions, stock, plan.per_user_limit
        )
        if plan.waiting_room:
            # A purchase may be refused not_admitted, and the room's answers count too.
            checks = [answers_check(crowd.log) if c.name == ANSWERS else c for c in checks]
            checks += room_checks(crowd.log, timeline, plan)
        counts = order_counts(sessions, SALE)
        report = build_report(
            crowd.log,
            status,
            counts,
            units_returned=len(stock.returned_orders(SALE)),
            first_wave_seconds=first_wave_seconds,
            counts=(plan.shoppers, plan.spammers, plan.second_wave),
            checks=checks,
            seconds=time.monotonic() - began,
        )
        chart = write_chart(
            out_dir / "sale.png",
            crowd.log,
            timeline,
            marks,
            f"{SALE}: {plan.stock} units, {report.requests:,} requests"
            + (
                f" to buy, {len(crowd.log.room_calls):,} to the waiting room"
                if plan.waiting_room
                else ""
            ),
            room=plan.waiting_room,
        )
        report = DemoReport(
            **report.__dict__
            | {
                "chart": str(chart),
                "redis": redis,
                "segments": plan.segments,
                "masters": master_shares(work, placement),
                "room": room_report(crowd.log, timeline, plan, status)
                if plan.waiting_room
                else None,
            }
        )
        (out_dir / "report.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        stock.close()
        return report
    finally:
        platform.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def show(report: DemoReport, console: Console) -> None:
    print_report(report, console)
    console.print(f"chart: {report.chart}")
    verdict = "[bold green]all invariants hold[/]" if report.passed else "[bold red]FAILED[/]"
    console.print(verdict)
