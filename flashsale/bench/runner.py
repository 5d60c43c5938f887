"""One benchmark run: every figure side by side on the same machine, in the same run."""

from __future__ import annotations

import dataclasses
import json
import os
import platform as host
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flashsale.api.server import DEFAULT_SERVER, SERVERS
from flashsale.bench import scenarios
from flashsale.bench.invariants import Check, check_admission, check_persisted
from flashsale.bench.platform import JWT_SECRET, BenchPlatform
from flashsale.bench.processes import api_server, baseline_server, cpu_seconds, worker_process
from flashsale.bench.report import write_report
from flashsale.bench.serve_baseline import baseline_on_path
from flashsale.bench.stats import load_average, summarize
from flashsale.bench.wrk import Load, ToolMissing, WrkResult, find_wrk, run_wrk, write_tokens

HTTP_FIELDS = ("rps", "p50_ms", "p99_ms", "errors")
CPU_FIELDS = ("server_cpu_us_per_request", "redis_cpu_us_per_request", "wrk_cpu_us_per_request")
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
            backlog=500,
            drain_runs=1,
            drain_seconds=60,
            drain_message_sizes=(1, 256),
            size_backlog=300,
            memory_reservations=2_000,
            redis_requests=5_000,
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

    def new_sale(self, prefix: str, stock: int) -> str:
        self.sale_counter += 1
        return self.platform.sale(f"{prefix}-{self.sale_counter}", stock, **SHOPPER_SPEC)

    def check(self, result: Check) -> None:
        self.checks.append(result)
        mark = "ok" if result.ok else "FAILED"
        self.log(f"    invariants [{result.scenario}]: {mark}: {result.detail}")

    def wrk(self, load: Load) -> WrkResult:
        return run_wrk(load, uuid.uuid4().hex)

    def measure(
        self,
        name: str,
        make_load: Callable[[int], Load],
        expected: int,
        after: Callable[[WrkResult, int], None],
        server_pids: list[int] | None = None,
    ) -> dict[str, Any]:
        """Warm-up, then `runs` timed runs per concurrency, the invariants after each.
        With `server_pids`, also the server's and Redis's CPU time per answered request."""
        redis_pids = (
            [self.platform.redis_server.proc.pid] if self.platform.redis_server.proc else []
        )
        by_connections: dict[str, Any] = {}
        for connections in self.options.connections:
            load = make_load(connections)
            warm = self.wrk(dataclasses.replace(load, seconds=self.options.warmup))
            after(warm, connections)
            runs = []
            for _ in range(self.options.runs):
                cpu_before = (cpu_seconds(server_pids or []), cpu_seconds(redis_pids))
                result = self.wrk(load)
                answered = max(1, sum(result.status.values()))
                server_cpu = cpu_seconds(server_pids or []) - cpu_before[0]
                redis_cpu = cpu_seconds(redis_pids) - cpu_before[1]
                runs.append(
                    result.as_dict()
                    | {
                        "errors": result.unexpected(expected),
                        "load_average": load_average(),
                        "server_cpu_us_per_request": round(server_cpu * 1e6 / answered, 1),
                        "redis_cpu_us_per_request": round(redis_cpu * 1e6 / answered, 1),
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


def _machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    wrk_version = subprocess.run([find_wrk(), "-v"], capture_output=True, text=True).stdout
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": _cpu_model(),
        "kernel": host.release(),
        "python": sys.version.split()[0],
        "wrk": " ".join(wrk_version.split()[:2]) if wrk_version else "wrk",
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return host.processor()


def reserve_calls(base: str) -> tuple[float, float]:
    """(purchases, script calls) the API counted so far, from its /metrics."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        text = response.read().decode()
    found = dict.fromkeys(("_sum", "_count"), 0.0)
    for line in text.splitlines():
        for suffix in found:
            if line.startswith(f"flashsale_reserve_call_purchases{suffix} "):
                found[suffix] = float(line.split()[1])
    return found["_sum"], found["_count"]


def http_figures(run: Run, server: str, with_sold_out: bool = True) -> dict[str, Any]:
    """/healthz, the reservation path and (optionally) the sold-out path on one server."""
    p, o = run.platform, run.options
    env = p.env(FLASHSALE_API_WORKERS=str(o.workers))
    api = api_server(env, p.workdir / f"api-{server}.log", server, o.workers).start()
    figures: dict[str, Any] = {}
    try:
        run.log(f"{server}: GET /healthz (the framework's ceiling)")
        figures["healthz"] = run.measure(
            "healthz",
            lambda c: Load(api.base + "/healthz", c, o.seconds, method="GET"),
            200,
            lambda *_: None,
            api.pids,
        )

        run.log(f"{server}: POST reservation (JWT, Idempotency-Key, stock never runs out)")
        live: dict[str, Any] = {"sale": "", "accepted": 0, "in_flight": 0, "calls": (0.0, 0.0)}
        per_call: dict[str, float] = {}

        def reservation_load(connections: int) -> Load:
            live.update(
                sale=run.new_sale(f"live-{server}", 100_000_000),
                accepted=0,
                in_flight=0,
                calls=reserve_calls(api.base),
            )
            path = f"/v1/sales/{live['sale']}/reservations"
            return Load(api.base + path, connections, o.seconds, "POST", run.tokens, None, True)

        def reservation_check(result: WrkResult, connections: int) -> None:
            # Warm-up answers count too: the sale is fresh for each concurrency level.
            live["accepted"] += result.status.get(202, 0)
            live["in_flight"] += connections
            run.check(
                check_admission(
                    p.stock.client,
                    f"reservation/{server}/c{connections}",
                    live["sale"],
                    live["accepted"],
                    live["in_flight"],
                )
            )
            p.stock.client.unlink(scenarios.QUEUE)  # no workers here: drop the task messages
            purchases, calls = reserve_calls(api.base)
            before = live["calls"]
            per_call[str(connections)] = round(
                (purchases - before[0]) / max(1.0, calls - before[1]), 1
            )

        figures["reservation"] = run.measure(
            "reservation", reservation_load, 202, reservation_check, api.pids
        )
        # How many purchases the API sent to Redis together: the task messages' size.
        for connections, mean in per_call.items():
            figures["reservation"][connections]["purchases_per_call"] = mean
            run.log(f"  reservation c={connections}: {mean} purchases per script call")
        if server == DEFAULT_SERVER:
            run.purchases_per_call = per_call

        if with_sold_out:
            run.log(f"{server}: POST reservation to a sold-out sale (late clicks, no key)")
            sold_out = run.new_sale(f"soldout-{server}", 0)
            path = f"/v1/sales/{sold_out}/reservations"
            figures["sold_out"] = run.measure(
                "sold_out",
                lambda c: Load(api.base + path, c, o.seconds, "POST", run.tokens),
                409,
                lambda _, c: run.check(
                    check_admission(p.stock.client, f"sold_out/{server}/c{c}", sold_out, 0)
                ),
                api.pids,
            )
    finally:
        api.stop()
    for sale in p.sales:
        if sale.startswith(("live-", "soldout-")):
            p.drop_sale_keys(sale)
    return figures


def sql_baseline(run: Run, server: str, synchronous_commit: str) -> dict[str, Any]:
    """The classic row-lock design on the same PostgreSQL, same server and workers."""
    baseline_on_path()
    import sql_baseline as baseline  # type: ignore[import-not-found]  # bench/, a script dir

    p, o = run.platform, run.options
    env = p.env(
        FLASHSALE_API_WORKERS=str(o.workers), BASELINE_SYNCHRONOUS_COMMIT=synchronous_commit
    )
    srv = baseline_server(env, p.workdir / "baseline.log", server, o.workers).start()
    state: dict[str, Any] = {"sale": "", "stock": 100_000_000}
    try:
        run.log(
            f"{server}: SQL row-lock baseline (SELECT FOR UPDATE, UPDATE, INSERT, commit), "
            f"synchronous_commit={synchronous_commit}"
        )

        def baseline_load(connections: int) -> Load:
            state["sale"] = f"baseline-{connections}"
            baseline.prepare(p.database_url, state["sale"], state["stock"])
            path = f"/v1/sales/{state['sale']}/reservations"
            return Load(srv.base + path, connections, o.seconds, "POST", run.tokens)

        def baseline_check(_: WrkResult, connections: int) -> None:
            left, sold = baseline.figures(p.database_url, str(state["sale"]))
            ok = left >= 0 and left + sold == state["stock"]
            detail = "stock adds up" if ok else f"OVERSOLD or lost: {left} left, {sold} sold"
            figures = {"left": left, "sold": sold}
            scenario = f"sql_baseline/{synchronous_commit}/c{connections}"
            run.check(Check(scenario, ok, detail, figures))

        return run.measure("sql baseline", baseline_load, 202, baseline_check, srv.pids)
    finally:
        srv.stop()


def redis_ceiling(run: Run) -> dict[str, Any]:
    run.log("redis-benchmark: EVALSHA reserve.lua (Redis's own ceiling)")
    o = run.options
    sale = run.new_sale("redis-ceiling", 1_000_000_000)
    figures: dict[str, Any] = {}
    for connections in o.connections:
        runs = []
        for _ in range(o.runs):
            result = scenarios.redis_ceiling(run.platform, sale, connections, o.redis_requests, 16)
            runs.append(result | {"load_average": load_average()})
            run.log(f"  redis c={connections} P=16: {result['rps']:,.0f} calls/s")
        figures[str(connections)] = summarize(runs, ("rps", "p50_ms", "p99_ms"))
    run.platform.drop_sale_keys(sale)
    return figures


def drain_backlog(
    run: Run, name: str, count: int, per_call: int, timeout: float
) -> scenarios.Drain:
    """`count` reservations, `per_call` to a task message, drained by the shipped worker
    without a pace; the invariants are checked after."""
    p, o = run.platform, run.options
    env = p.env(
        FLASHSALE_ORDERS_PER_SECOND="1000000",  # no pacing: how fast can they go
        FLASHSALE_WORKER_CONCURRENCY=str(o.worker_concurrency),
    )
    sale = run.platform.sale(
        f"{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}", count, **SHOPPER_SPEC
    )
    order_ids = scenarios.create_backlog(p, sale, count, per_call)
    worker = worker_process(env, p.workdir / f"{name}.log", o.worker_concurrency)
    started = time.monotonic()
    worker.start()
    try:
        drained = scenarios.wait_for_drain(p.database_url, sale, count, started, timeout)
        # Give the last acknowledgements (after each commit) a moment to land.
        deadline = time.monotonic() + 10
        while (
            drained.complete
            and time.monotonic() < deadline
            and p.stock.client.zcard(f"fs:{{{sale}}}:outbox")
        ):
            time.sleep(0.1)
    finally:
        worker.stop()
    run.check(check_persisted(p.stock.client, p.sessions, name, sale, order_ids))
    p.drop_sale_keys(sale)
    return drained


def worker_drain(run: Run) -> dict[str, Any]:
    """One backlog drained by the shipped worker (no pacing), timed in three slices; then
    smaller backlogs with other message sizes, to show what a message costs."""
    p, o = run.platform, run.options
    per_call = run.backlog_batch()
    run.log(
        f"workers: drain a backlog of {o.backlog:,} reservations into PostgreSQL, "
        f"{per_call} per task message as the API made them"
    )
    drained = drain_backlog(run, "worker_drain", o.backlog, per_call, o.drain_seconds)
    segments = [s | {"load_average": load_average()} for s in drained.segments(3)]
    drain = summarize(segments, ("orders_per_second",)) | {"overall": drained.overall()}
    run.log(
        f"  drain: {drained.persisted:,} of {o.backlog:,} persisted, "
        f"{drain['overall']['orders_per_second']:,.0f} orders/s overall, slices "
        + ", ".join(f"{s['orders_per_second']:,.0f}" for s in segments)
    )
    by_size: dict[str, Any] = {}
    for size in o.drain_message_sizes:
        sized = drain_backlog(run, f"drain_by_size_{size}", o.size_backlog, size, o.drain_seconds)
        by_size[str(size)] = sized.overall()
        run.log(
            f"  {size} per message: {by_size[str(size)]['orders_per_second']:,.0f} orders/s "
            f"({o.size_backlog:,} reservations)"
        )

    run.log("PostgreSQL: the same rows in one COPY / one multi-row INSERT (its ceiling)")
    ceiling_sale = run.platform.sale(f"ceiling-{uuid.uuid4().hex[:6]}", 1, **SHOPPER_SPEC)
    ceiling_runs = []
    for _ in range(o.drain_runs):
        result = scenarios.insert_ceiling(p.database_url, ceiling_sale, o.backlog)
        ceiling_runs.append(result | {"load_average": load_average()})
        run.log(f"  insert ceiling: {result['rows_per_second']:,.0f} rows/s")
    ceiling = summarize(
        ceiling_runs, ("rows_per_second", "copy_rows_per_second", "insert_rows_per_second")
    )
    return {
        "drain": drain,
        "drain_by_message_size": by_size,
        "insert_ceiling": ceiling,
        "backlog": o.backlog,
        "backlog_per_message": per_call,
    }


def redis_memory(run: Run) -> dict[str, Any]:
    count = run.options.memory_reservations
    run.log(f"Redis memory over {count:,} live reservations")
    sale = run.new_sale("memory", count)
    result = scenarios.memory_per_reservation(run.platform, sale, count, run.backlog_batch())
    run.log(f"  {result['bytes_per_reservation']:,.0f} bytes per live reservation")
    run.platform.drop_sale_keys(sale)
    return result


def run_benchmark(options: Options, log: Callable[[str], None] = print) -> Path:
    """Run every figure; write JSON, Markdown and charts; return the JSON's path.
    Raises SystemExit(1) after writing them when any invariant failed."""
    find_wrk()
    try:
        scenarios.find_redis_benchmark()
        missing_redis_benchmark = ""
    except ToolMissing as exc:
        missing_redis_benchmark = str(exc)
        log(f"WARNING: no Redis ceiling in this run: {exc}")
    started = datetime.now(UTC)
    platform = BenchPlatform.start()
    try:
        run = Run(options, platform, Path(), log)
        # The ratios are taken on the shipped default server when it was measured.
        server = DEFAULT_SERVER if DEFAULT_SERVER in options.servers else options.servers[0]
        run.tokens = write_tokens(platform.workdir / "tokens.txt", JWT_SECRET, options.users)
        results: dict[str, Any] = {
            "started_at": started.isoformat(timespec="seconds"),
            "quick": options.quick,
            "machine": _machine(),
            "settings": {
                "connections": list(options.connections),
                "runs": options.runs,
                "seconds_per_run": options.seconds,
                "warmup_seconds": options.warmup,
                "api_workers": options.workers,
                "servers": list(options.servers),
                "default_server": server,
                "users": options.users,
                "load_generator": "wrk, bench/wrk/flashsale.lua",
            },
            "load_average_at_start": load_average(),
        }
        servers: dict[str, Any] = {}
        for name in options.servers:
            servers[name] = http_figures(run, name)
        results["servers"] = servers
        results["sql_baseline"] = sql_baseline(run, server, "on")
        results["sql_baseline_async_commit"] = sql_baseline(run, server, "off")
        results["redis_ceiling"] = (
            {"skipped": missing_redis_benchmark} if missing_redis_benchmark else redis_ceiling(run)
        )
        results |= worker_drain(run)
        results["redis_memory"] = redis_memory(run)
        results["invariants"] = {
            "ok": all(c.ok for c in run.checks),
            "checks": [c.as_dict() for c in run.checks],
        }
        results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["load_average_at_end"] = load_average()
        stamp = started.strftime("%Y-%m-%dT%H%MZ") + ("-quick" if options.quick else "")
        path = write_report(results, options.out_dir, stamp)
    finally:
        platform.close()
    log(f"results: {path}")
    if not results["invariants"]["ok"]:
        failed = [c for c in run.checks if not c.ok]
        for check in failed:
            log(f"INVARIANT BROKEN in {check.scenario}: {check.detail}")
        log("BENCHMARK FAILED: the design's invariants did not hold (see above)")
        raise SystemExit(1)
    return path


def main_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
