"""A benchmark run's options and shared state, and the timed measurement every HTTP
figure goes through."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flashsale.api.server import DEFAULT_SERVER, SERVERS
from flashsale.bench.platform import BenchPlatform
from flashsale.bench.processes import cpu_seconds
from flashsale.bench.stats import busy_between, cpu_times, load_average, summarize
from flashsale.bench.wrk import Load, WrkResult, run_wrk
from flashsale.invariants import Check

HTTP_FIELDS = ("rps", "p50_ms", "p99_ms", "errors")
CPU_FIELDS = (
    "server_cpu_us_per_request",
    "redis_cpu_us_per_request",
    "wrk_cpu_us_per_request",
    "server_cores",
    "machine_busy",
)
# A timed run does not start while Redis rewrites its append-only file (the rewrite the
# earlier runs' writes set off); it waits this long at most.
REWRITE_WAIT_SECONDS = 60.0
# Per-user limit and rate limit a shopper never reaches in these runs (users cycle slowly
# enough): the script still runs its token bucket and limit checks on every call.
SHOPPER_SPEC: dict[str, Any] = {
    "perUserLimit": 1_000_000,
    "rateLimit": {"requestsPerSecond": 50, "burst": 100},
}


@dataclass
class Options:
    connections: tuple[int, ...] = (64, 256)
    runs: int = 3
    seconds: float = 6.0
    warmup: float = 3.0
    servers: tuple[str, ...] = SERVERS
    workers: int = 1
    # Distinct shoppers, each with a token; the reservation warm-up reaches every one, so
    # the timed runs see each token's verification cached (a first use costs ~35 us).
    users: int = 10_000
    # Fresh shoppers for the joins figure (flashsale/bench/room_runs.py): each wrk run
    # joins a fresh sale, and no user of this pool twice while it lasts.
    join_users: int = 150_000  # more than a 6 s run of joins takes at 20,000/s
    backlog: int = 50_000
    drain_runs: int = 3  # insert-ceiling runs; the drain itself is timed in three slices
    # The drain is stopped after this long (the run must end within 15 minutes); the
    # rate is then taken over what was persisted, and the rest is checked to be waiting.
    drain_seconds: float = 240.0
    worker_concurrency: int = 4
    # The drain again with these reservations per task message, on smaller backlogs.
    drain_message_sizes: tuple[int, ...] = (1, 16, 256)
    size_backlog: int = 20_000
    memory_reservations: int = 100_000
    redis_requests: int = 100_000
    # The cluster series (flashsale/bench/cluster_runs.py), at the highest concurrency.
    cluster: bool = True
    cluster_masters: int = 3
    cluster_segments: tuple[int, ...] = (1, 3, 6)  # the hot sale's, in turn
    reference_segments: tuple[int, ...] = (1, 3, 6)  # the same traffic on one Redis
    ordinary_sales: int = 12
    hot_share: float = 0.5  # of the requests; the ordinary sales share the rest evenly
    out_dir: Path = Path("bench/results")
    quick: bool = False

    @classmethod
    def quick_run(cls, out_dir: Path) -> Options:
        return cls(
            connections=(64,),
            runs=1,
            seconds=1,
            warmup=1,
            servers=(DEFAULT_SERVER,),
            users=500,
            join_users=30_000,
            backlog=500,
            drain_runs=1,
            drain_seconds=60,
            drain_message_sizes=(1, 256),
            size_backlog=300,
            memory_reservations=2_000,
            redis_requests=5_000,
            cluster_segments=(3,),
            reference_segments=(1,),
            out_dir=out_dir,
            quick=True,
        )


@dataclass
class Run:
    options: Options
    platform: BenchPlatform
    tokens: Path
    log: Callable[[str], None]
    results: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    sale_counter: int = 0
    # Mean purchases per reserve call the default server made, by connections.
    purchases_per_call: dict[str, float] = field(default_factory=dict)

    def backlog_batch(self) -> int:
        """Purchases per call (and task message) for the drain and memory figures: what
        the API made at the highest concurrency measured, 1 when it was not measured."""
        if not self.purchases_per_call:
            return 1
        busiest = max(self.purchases_per_call, key=int)
        return max(1, round(self.purchases_per_call[busiest]))

    def new_sale(self, prefix: str, stock: int, **spec: Any) -> str:
        self.sale_counter += 1
        name = f"{prefix}-{self.sale_counter}"
        return self.platform.sale(name, stock, **(SHOPPER_SPEC | spec))

    def check(self, result: Check) -> None:
        self.checks.append(result)
        mark = "ok" if result.passed else "FAILED"
        self.log(f"    invariants [{result.name}]: {mark}: {result.detail}")

    def wrk(self, load: Load) -> WrkResult:
        return run_wrk(load, uuid.uuid4().hex)

    def redis_persistence(self) -> tuple[int, int]:
        """(forks, delayed AOF fsyncs) of the benchmark's Redis so far. Every fork is an
        AOF rewrite here (no snapshots are configured): the child copies the whole data
        set while the runs go on, on the same cores; a delayed fsync is Redis waiting on
        the disk."""
        stats, persistence = (
            self.platform.redis.info("stats"),
            self.platform.redis.info("persistence"),
        )
        return int(stats.get("total_forks", 0)), int(persistence.get("aof_delayed_fsync", 0))

    def wait_for_rewrite(self) -> float:
        """Wait until no AOF rewrite is under way; the seconds waited."""
        began = time.monotonic()
        while time.monotonic() - began < REWRITE_WAIT_SECONDS:
            if not int(self.platform.redis.info("persistence").get("aof_rewrite_in_progress", 0)):
                break
            time.sleep(0.2)
        return round(time.monotonic() - began, 1)

    def measure(
        self,
        name: str,
        make_load: Callable[[int], Load],
        expected: int,
        after: Callable[[WrkResult, int], None],
        server_pids: list[int] | None = None,
        levels: tuple[int, ...] | None = None,
        fresh: Callable[[Load], Load] | None = None,
    ) -> dict[str, Any]:
        """Warm-up, then `runs` timed runs per concurrency (`levels`, default all), the
        invariants after each. With `server_pids`, also the server's and Redis's CPU time
        per answered request. With `fresh`, every wrk run (the warm-up too) takes its load
        from `fresh(load)`: for requests that change state for good (joining a queue)."""
        redis_pids = (
            [self.platform.redis_server.proc.pid] if self.platform.redis_server.proc else []
        )
        by_connections: dict[str, Any] = {}
        for connections in levels or self.options.connections:
            load = make_load(connections)
            warm_load = fresh(load) if fresh else load
            warm = self.wrk(dataclasses.replace(warm_load, seconds=self.options.warmup))
            after(warm, connections)
            runs = []
            for _ in range(self.options.runs):
                run_load = fresh(load) if fresh else load
                waited = self.wait_for_rewrite()
                persistence = self.redis_persistence()
                machine = cpu_times()
                cpu_before = (cpu_seconds(server_pids or []), cpu_seconds(redis_pids))
                result = self.wrk(run_load)
                answered = max(1, sum(result.status.values()))
                server_cpu = cpu_seconds(server_pids or []) - cpu_before[0]
                redis_cpu = cpu_seconds(redis_pids) - cpu_before[1]
                busy = busy_between(machine, cpu_times())
                forks, delayed = (
                    a - b for a, b in zip(self.redis_persistence(), persistence, strict=True)
                )
                runs.append(
                    result.as_dict()
                    | {
                        "errors": result.unexpected(expected),
                        "load_average": load_average(),
                        "server_cpu_us_per_request": round(server_cpu * 1e6 / answered, 1),
                        "redis_cpu_us_per_request": round(redis_cpu * 1e6 / answered, 1),
                        # The server's share of one core, and the whole machine's.
                        "server_cores": round(server_cpu / max(result.seconds, 1e-3), 2),
                        "machine_busy": busy,
                        "aof_rewrites": forks,
                        "aof_delayed_fsync": delayed,
                        "waited_for_rewrite_seconds": waited,
                    }
                )
                after(result, connections)
                self.log(
                    f"  {name} c={connections}: {result.rps:,.0f} req/s, "
                    f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                    f"status {result.status}, errors {runs[-1]['errors']}"
                )
            fields = HTTP_FIELDS + (CPU_FIELDS if server_pids else ())
            by_connections[str(connections)] = summarize(runs, fields)
        return by_connections
