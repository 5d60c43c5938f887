"""Real servers for the whole session: Redis, PostgreSQL, the API over HTTP and a Celery
worker, each on its own free port in its own temporary folder."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from flashsale.api.auth import issue_token
from flashsale.db.engine import session_factory
from flashsale.embedded import free_port
from flashsale.local.process import Process as BackgroundProcess
from flashsale.local.storage import Storage
from flashsale.sales import apply_sale
from flashsale.spec import SaleSpec
from flashsale.stock import Stock
from tests.helpers.wait import wait_for

JWT_SECRET = "test-secret-" + "x" * 32
FLASHSALE = str(Path(sys.executable).parent / "flashsale")


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


@dataclass
class Platform:
    redis_url: str
    database_url: str
    env: dict[str, str]
    sessions: sessionmaker[Session]
    stock: Stock
    redis: redis.Redis  # the same Redis, raw, for tests that look at keys themselves

    def sale(self, name: str | None = None, **spec: Any) -> str:
        """Create a sale with test-friendly defaults (no rate limit unless asked)."""
        name = name or f"t-{uuid.uuid4().hex[:10]}"
        doc: dict[str, Any] = {
            "sku": "SKU-1",
            "stock": 10,
            "perUserLimit": 1,
            "rateLimit": {"requestsPerSecond": 0, "burst": 1},
        }
        doc.update(spec)
        apply_sale(self.sessions, self.stock, name, SaleSpec.model_validate(doc))
        return name

    def orders(self, sale: str) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.execute(
                text(
                    "SELECT id, user_id, quantity, status, restored_at FROM orders WHERE sale = :s"
                ),
                {"s": sale},
            ).mappings()
            return [dict(row) for row in rows]

    def remaining(self, sale: str) -> int:
        return self.stock.remaining(sale)


def token(user: str, ttl: int = 3600) -> str:
    return issue_token(JWT_SECRET, user, ttl)


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}"}


class Process(BackgroundProcess):
    """A `flashsale` subcommand running in the background, with its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        super().__init__([FLASHSALE, *args], env, log=log)


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: its 0700 parents would keep an unprivileged postgres out.
    path = Path(tempfile.mkdtemp(prefix="flashsale-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_storage(root: Path, appendonly: bool) -> tuple[Storage, dict[str, str]]:
    """A throwaway Redis and a migrated PostgreSQL in `root`, and the environment that
    points `flashsale` commands at them (and at nothing configured outside the tests)."""
    storage = Storage.throwaway(root, appendonly=appendonly).start()
    redis_url, database_url = storage.urls
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")} | {
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_JWT_SECRET": JWT_SECRET,
        "FLASHSALE_SWEEP_AFTER_SECONDS": "1",
    }
    return storage, env


@pytest.fixture(scope="session")
def platform(workdir: Path) -> Iterator[Platform]:
    storage, env = start_storage(workdir, appendonly=False)
    rds, pg = storage.redis, storage.postgres
    assert rds is not None and pg is not None
    env["FLASHSALE_ORDERS_PER_SECOND"] = "5000"
    client = redis.Redis.from_url(rds.url)
    try:
        yield Platform(rds.url, pg.url, env, session_factory(pg.url), Stock(client), client)
    finally:
        client.close()
        storage.stop()


def serve_api(env: dict[str, str], log: Path) -> tuple[Process, str]:
    """`flashsale api` on a free port, once it answers /healthz."""
    port = free_port()
    proc = Process(["api", "--port", str(port)], env, log).start()
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.proc and proc.proc.poll() is None, proc.output()
        try:
            return httpx.get(base + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout=60)
    return proc, base


def start_api(
    platform: Platform, workdir: Path, name: str, **extra_env: str
) -> tuple[Process, str]:
    return serve_api({**platform.env, **extra_env}, workdir / f"{name}.log")


@pytest.fixture(scope="session")
def api(platform: Platform, workdir: Path) -> Iterator[str]:
    proc, base = start_api(platform, workdir, "api")
    yield base
    proc.stop()


@pytest.fixture(scope="session")
def worker(platform: Platform, workdir: Path) -> Iterator[Process]:
    proc = Process(
        ["worker", "--pool", "threads", "--concurrency", "8"], platform.env, workdir / "worker.log"
    ).start()
    wait_for(lambda: "ready" in proc.output(), timeout=60)
    yield proc
    proc.stop()


@pytest.fixture
async def client(api: str) -> Any:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=api, timeout=30, limits=limits) as c:
        yield c
