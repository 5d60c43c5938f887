"""The benchmark's own Redis and PostgreSQL, migrated, with helpers to load sales."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from flashsale.clients import Role, database_at, redis_client
from flashsale.embedded import PostgresServer, RedisServer
from flashsale.local.storage import Storage
from flashsale.sales import apply_sale
from flashsale.spec import SaleSpec
from flashsale.stock import Stock

JWT_SECRET = "bench-" + os.urandom(24).hex()


@dataclass
class BenchPlatform:
    workdir: Path
    redis_server: RedisServer
    postgres: PostgresServer
    sessions: sessionmaker[Session]
    stock: Stock
    redis: redis.Redis  # the same Redis, raw: the benchmark measures it and its queues
    keep: bool = False
    sales: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, keep: bool = False) -> BenchPlatform:
        # Not under a 0700 parent: PostgreSQL may run as an unprivileged user.
        workdir = Path(tempfile.mkdtemp(prefix="flashsale-bench-"))
        # Both as production runs them: Redis with its append-only file (fsync every
        # second), PostgreSQL with its durable defaults (the baseline is also measured
        # with synchronous_commit off, which flatters it).
        storage = Storage.throwaway(workdir, appendonly=True, durable=True).start()
        assert storage.redis is not None and storage.postgres is not None
        rds, pg = storage.redis, storage.postgres
        client = redis_client(rds.url, Role.BULK)
        return cls(workdir, rds, pg, database_at(pg.url), Stock(client), client, keep)

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "FLASHSALE_REDIS_URL": self.redis_url,
            "FLASHSALE_DATABASE_URL": self.database_url,
            "FLASHSALE_JWT_SECRET": JWT_SECRET,
            **extra,
        }

    def sale(self, name: str, stock: int, **spec: Any) -> str:
        doc: dict[str, Any] = {"sku": "BENCH-1", "stock": stock, **spec}
        apply_sale(self.sessions, self.stock, name, SaleSpec.model_validate(doc))
        self.sales.append(name)
        return name

    def drop_sale_keys(self, name: str, queue: str | None = None) -> None:
        """Free a finished run's Redis memory (its keys, and the task queue if named)."""
        self.stock.remove_sale(name)
        if queue:
            self.redis.unlink(queue)

    def close(self) -> None:
        self.stock.close()
        self.redis_server.stop()
        self.postgres.stop()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
