"""A whole platform per test, to break: its own Redis (append-only file on), PostgreSQL,
API and Celery worker, each restartable, and the design's invariants checked afterwards.

Each scenario records what it broke and what it saw; at the end of the run the figures
are written to `build/faults-report.json` (RELIABILITY.md quotes them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from flashsale.db.engine import session_factory
from flashsale.demo.crowd import Click, Crowd
from flashsale.demo.timeline import Timeline, sample_once
from flashsale.embedded import PostgresServer, RedisServer
from flashsale.invariants import Check, check_invariants
from flashsale.sales import apply_sale, sale_status
from flashsale.settings import Settings
from flashsale.spec import SaleSpec
from flashsale.stock import AsyncStock, Stock
from flashsale.sweeper import sweep
from tests.conftest import JWT_SECRET, Process, serve_api, start_storage, wait_for

QUEUE = Settings().queue
REPORT: list[dict[str, Any]] = []
REPORT_FILE = Path(__file__).resolve().parents[2] / "build" / "faults-report.json"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REPORT:
        REPORT_FILE.parent.mkdir(exist_ok=True)
        REPORT_FILE.write_text(json.dumps(REPORT, indent=2) + "\n")


@dataclass
class Stack:
    root: Path
    redis: RedisServer
    postgres: PostgresServer
    env: dict[str, str]
    stock: Stock
    sessions: sessionmaker[Session]
    client: redis.Redis  # the stack's Redis, raw, for scenarios that look at keys
    processes: dict[str, Process] = field(default_factory=dict)
    servers: list[RedisServer] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def redis_server(self, name: str, appendonly: bool = False) -> RedisServer:
        """Another Redis (a separate broker, say), stopped with the stack."""
        server = RedisServer(self.root / name, appendonly=appendonly).start()
        self.servers.append(server)
        return server

    def start(self, name: str, args: list[str], **env: str) -> Process:
        proc = Process(args, self.env | env, self.root / f"{name}.log").start()
        self.processes[name] = proc
        return proc

    def start_api(self, name: str = "api", **env: str) -> str:
        proc, base = serve_api(self.env | env, self.root / f"{name}.log")
        self.processes[name] = proc
        return base

    def start_worker(self, name: str = "worker", **env: str) -> Process:
        proc = self.start(name, ["worker", "--pool", "prefork", "--concurrency", "2"], **env)
        wait_for(lambda: "ready" in proc.output(), timeout=60)
        return proc

    def sale(self, **spec: Any) -> str:
        name = f"f-{uuid.uuid4().hex[:8]}"
        doc = {"sku": "FAULT-1", "stock": 100, "rateLimit": {"requestsPerSecond": 0}} | spec
        apply_sale(self.sessions, self.stock, name, SaleSpec.model_validate(doc))
        return name

    def crowd(self, base: str, sale: str, connections: int = 64) -> Crowd:
        return Crowd(base, sale, JWT_SECRET, connections)

    def sweep(self, older_than: float = 0.0, broker: redis.Redis | None = None) -> int:
        """What `flashsale sweep` does, against this stack."""
        return sweep(self.sessions, self.stock, broker or self.client, QUEUE, older_than)

    def settle(
        self, sale: str, orders: int, timeout: float = 90.0, broker: redis.Redis | None = None
    ) -> None:
        """Wait until `orders` rows exist and nothing is in flight; sweep while waiting."""

        def settled() -> bool:
            status = sale_status(self.sessions, self.stock, sale)
            assert status is not None
            done = status.stock.reserved == 0 and self.order_count(sale) >= orders
            if not done:
                self.sweep(older_than=2.0, broker=broker)
            return done

        try:
            wait_for(settled, timeout=timeout, every=0.5)
        except AssertionError:
            status = sale_status(self.sessions, self.stock, sale)
            client = broker or self.client
            raise AssertionError(
                f"not settled: {self.order_count(sale)} of {orders} orders, {status}, "
                f"outbox {self.stock.outbox_size(sale)}, "
                f"queue {client.llen(QUEUE)}, unacked {client.hlen('unacked')}"
            ) from None

    def order_count(self, sale: str) -> int:
        with self.sessions() as session:
            return int(
                session.scalar(text("SELECT count(*) FROM orders WHERE sale = :s"), {"s": sale})
            )

    @contextlib.asynccontextmanager
    async def watch(self, sale: str, total: int) -> AsyncIterator[Timeline]:
        """Sample the sale's figures while the block runs (for "no oversell at any
        instant"); Redis or PostgreSQL being down just leaves a gap."""
        timeline = Timeline(sale, total, started=time.monotonic())
        sampled = AsyncStock(aioredis.Redis.from_url(self.redis.url, socket_timeout=1))

        async def sample() -> None:
            while True:
                try:
                    await sample_once(timeline, sampled, self.sessions)
                except Exception:  # noqa: BLE001 - an outage under test
                    pass
                await asyncio.sleep(0.1)

        task = asyncio.create_task(sample())
        try:
            yield timeline
        finally:
            task.cancel()
            await sampled.close()

    def verdicts(
        self, crowd: Crowd, sale: str, timeline: Timeline, per_user_limit: int = 1
    ) -> list[Check]:
        status = sale_status(self.sessions, self.stock, sale)
        assert status is not None
        assert timeline.samples, "the sale was never sampled"
        return check_invariants(
            crowd.log, timeline, status, self.sessions, self.stock, per_user_limit
        )

    def record(
        self, scenario: str, crowd: Crowd, timeline: Timeline, per_user_limit: int = 1, **extra: Any
    ) -> None:
        """Check the invariants, keep the figures for the report, fail on any violation."""
        checks = self.verdicts(crowd, timeline.sale, timeline, per_user_limit)
        outcomes = crowd.log.outcomes()
        REPORT.append(
            {
                "scenario": scenario,
                "requests": len(crowd.log.clicks),
                "accepted": outcomes.get("accepted", 0),
                "orders": self.order_count(timeline.sale),
                "outcomes": dict(outcomes),
                "faults": self.faults,
                "samples": len(timeline.samples),
                "checks": {c.name: "PASS" if c.passed else f"FAIL: {c.detail}" for c in checks},
                **extra,
            }
        )
        failed = [c for c in checks if not c.passed]
        assert not failed, failed


@pytest.fixture
def stack() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="flashsale-faults-"))
    storage, env = start_storage(root, appendonly=True)
    rds, pg = storage.redis, storage.postgres
    assert rds is not None and pg is not None
    client = redis.Redis.from_url(rds.url)
    built = Stack(root, rds, pg, env, Stock(client), session_factory(pg.url), client)
    try:
        yield built
    finally:
        for proc in built.processes.values():
            proc.stop(9)
        for server in built.servers:
            if server.proc and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)  # in case a test froze it
            server.stop()
        client.close()
        built.redis.stop()  # the one a test put in place of `rds`, if it did
        storage.stop()
        if not os.environ.get("FLASHSALE_KEEP_FAULT_LOGS"):
            shutil.rmtree(root, ignore_errors=True)


UNANSWERED = (0, 503)  # no answer at all, or "unavailable": a client tries again


async def click_until_answered(
    crowd: Crowd, user: str, key: str, pause: float = 0.2, wave: int = 1
) -> tuple[Click, int]:
    """Press "Buy" like a real client: on no answer or 503, wait and retry with the same
    idempotency key. Returns the final answer and how many tries went unanswered."""
    misses = 0
    while True:
        click = await crowd.click(wave, user, key)
        if click.status not in UNANSWERED:
            return click, misses
        misses += 1
        await asyncio.sleep(pause)


def drop_unanswered(crowd: Crowd) -> int:
    """Forget the tries that a retry answered; returns how many there were."""
    before = len(crowd.log.clicks)
    crowd.log.clicks = [c for c in crowd.log.clicks if c.status not in UNANSWERED]
    return before - len(crowd.log.clicks)
