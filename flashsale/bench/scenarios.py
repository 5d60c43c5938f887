"""The figures outside HTTP: Redis's own ceiling, worker drain against PostgreSQL's insert
ceiling, and Redis memory per live reservation."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from flashsale.bench.platform import BenchPlatform
from flashsale.bench.wrk import require_tool
from flashsale.handoff import persist_template
from flashsale.stock import Outcome, Purchase
from flashsale.stock.calls import reserve_call

QUEUE = "flashsale.orders"


def find_redis_benchmark() -> str:
    return require_tool("redis-benchmark", "redis-tools", "redis")


def redis_ceiling(
    platform: BenchPlatform, sale: str, connections: int, requests: int, pipeline: int
) -> dict[str, float]:
    """redis-benchmark calling reserve.lua with EVALSHA, one purchase per call: users and
    order ids vary per call, each call pushes a task message, as the API's calls do."""
    sha = platform.stock.load_script("reserve")
    user = "rb-__rand_int__"
    order = "__rand_int__"
    keys, args = reserve_call(
        sale, [Purchase(user, 1, order)], QUEUE, persist_template(sale, QUEUE)
    )
    port = str(platform.redis_server.port)
    cmd = [
        find_redis_benchmark(),
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-c",
        str(connections),
        "-n",
        str(requests),
        "-P",
        str(pipeline),
        "-r",
        "1000000000",
        "--csv",
        "EVALSHA",
        sha,
        str(len(keys)),
        *keys,
        *(a.decode() if isinstance(a, bytes) else str(a) for a in args),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {done.stderr[-2000:]}")
    # The test name column holds the whole command (quotes and commas included): read
    # the seven figures from the right of the last line.
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    if len(lines) < 2:
        raise RuntimeError(f"redis-benchmark printed nothing:\n{done.stdout[-2000:]}")
    figures = [float(v.strip('"')) for v in lines[-1].rsplit(",", 7)[1:]]
    row = dict(zip(lines[0].rsplit(",", 7)[1:], figures, strict=True))
    row = {k.strip('"'): v for k, v in row.items()}
    platform.redis.unlink(QUEUE)
    return {
        "rps": float(row["rps"]),
        "p50_ms": float(row["p50_latency_ms"]),
        "p99_ms": float(row["p99_latency_ms"]),
    }


def create_backlog(platform: BenchPlatform, sale: str, count: int, per_call: int) -> set[str]:
    """`count` accepted reservations made by the reserve script exactly as the API makes
    them (script handoff), `per_call` purchases to a call and so to a task message."""
    stock = platform.stock
    order_ids: set[str] = set()
    for start in range(0, count, per_call):
        purchases = [
            Purchase(f"backlog-{i}", 1, str(uuid.uuid4()))
            for i in range(start, min(count, start + per_call))
        ]
        for result in stock.reserve_many(sale, purchases, QUEUE):
            if result.outcome is not Outcome.ACCEPTED or result.order_id is None:
                raise RuntimeError(f"backlog reservation refused: {result!r}")
            order_ids.add(result.order_id)
    return order_ids


def count_orders(database_url: str, sale: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM orders WHERE sale = %s", (sale,)).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Drain:
    """How the order count in SQL grew while workers drained a backlog."""

    expected: int
    started: float  # the workers' start (monotonic)
    samples: list[tuple[float, int]]  # (monotonic time, orders in SQL)

    def segments(self, parts: int) -> list[dict[str, Any]]:
        """Orders per second in `parts` consecutive, equal slices of the backlog (after
        the first order appeared, so worker start-up is not counted)."""
        first_at, first_count = next((t, c) for t, c in self.samples if c > 0)
        done = self.persisted
        bounds = [first_count + (done - first_count) * i // parts for i in range(1, parts)]
        bounds.append(done)
        out, t0, c0 = [], first_at, first_count
        for bound in bounds:
            t1, c1 = next((t, c) for t, c in self.samples if c >= bound)
            seconds = max(t1 - t0, 1e-3)
            out.append(
                {
                    "orders": c1 - c0,
                    "seconds": round(seconds, 3),
                    "orders_per_second": round((c1 - c0) / seconds, 1),
                }
            )
            t0, c0 = t1, c1
        return out

    @property
    def persisted(self) -> int:
        return self.samples[-1][1]

    @property
    def complete(self) -> bool:
        return self.persisted >= self.expected

    def overall(self) -> dict[str, Any]:
        first_at, first_count = next((t, c) for t, c in self.samples if c > 0)
        last_at = self.samples[-1][0]
        if first_at == last_at:  # all of it between two samples: count from the start
            first_at, first_count = self.started, 0
        seconds = max(last_at - first_at, 1e-3)
        return {
            "backlog": self.expected,
            "persisted": self.persisted,
            "complete": self.complete,
            "seconds": round(seconds, 3),
            "wall_seconds_with_startup": round(last_at - self.started, 3),
            "orders_per_second": round((self.persisted - first_count) / seconds, 1),
        }


def wait_for_drain(
    database_url: str, sale: str, expected: int, started: float, timeout: float
) -> Drain:
    """Watch the order count until the backlog is in SQL or `timeout` seconds passed."""
    drain = Drain(expected, started, [])
    deadline = started + timeout
    while True:
        count = count_orders(database_url, sale)
        drain.samples.append((time.monotonic(), count))
        if count >= expected or time.monotonic() >= deadline:
            if count == 0:
                raise RuntimeError(f"no order reached SQL within {timeout}s")
            return drain
        time.sleep(0.02)


def _ceiling_rows(sale: str, count: int) -> Iterator[tuple[Any, ...]]:
    now = datetime.now(UTC)
    expires = now + timedelta(minutes=10)
    for i in range(count):
        yield (uuid.uuid4(), sale, f"copy-{i}", 1, "pending_payment", now, expires)


def insert_ceiling(database_url: str, sale: str, count: int) -> dict[str, float]:
    """The same order rows written by PostgreSQL's fastest path (one COPY, one commit),
    and by one multi-row INSERT ... SELECT; then removed again."""
    columns = "id, sale, user_id, quantity, status, reserved_at, expires_at"
    with psycopg.connect(database_url) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY orders ({columns}) FROM STDIN") as copy:
            for row in _ceiling_rows(sale, count):
                copy.write_row(row)
        conn.commit()
        copy_seconds = time.perf_counter() - started
        conn.execute("DELETE FROM orders WHERE sale = %s", (sale,))
        conn.commit()
        started = time.perf_counter()
        conn.execute(
            f"INSERT INTO orders ({columns}) "
            "SELECT gen_random_uuid(), %s, 'insert-' || i, 1, 'pending_payment', now(), "
            "now() + interval '10 minutes' FROM generate_series(1, %s) AS i",
            (sale, count),
        )
        conn.commit()
        insert_seconds = time.perf_counter() - started
        conn.execute("DELETE FROM orders WHERE sale = %s", (sale,))
        conn.commit()
    return {
        "copy_rows_per_second": round(count / copy_seconds, 1),
        "insert_rows_per_second": round(count / insert_seconds, 1),
        "rows_per_second": round(count / min(copy_seconds, insert_seconds), 1),
    }


def memory_per_reservation(
    platform: BenchPlatform, sale: str, count: int, per_call: int
) -> dict[str, float]:
    """Redis `used_memory` before and after `count` live reservations made as the API
    makes them (with an Idempotency-Key, `per_call` to a call and its task message)."""
    client = platform.redis
    client.unlink(QUEUE)
    before = int(client.info("memory")["used_memory"])
    for start in range(0, count, per_call):
        purchases = [
            Purchase(f"mem-{i}", 1, str(uuid.uuid4()), f"key-{i}")
            for i in range(start, min(count, start + per_call))
        ]
        platform.stock.reserve_many(sale, purchases, QUEUE)
    after = int(client.info("memory")["used_memory"])
    queue_bytes = int(client.memory_usage(QUEUE, samples=0) or 0)
    client.unlink(QUEUE)
    total = (after - before) / count
    return {
        "reservations": count,
        "reservations_per_message": per_call,
        "bytes_per_reservation": round(total, 1),
        "of_which_task_message": round(queue_bytes / count, 1),
        "bytes_without_task_message": round(total - queue_bytes / count, 1),
    }
