"""The cluster series: reservations through the API on a local Redis Cluster, and what
each master spends on them.

The traffic: one hot sale, spread over 1, 3 and 6 segments in turn, takes half of the
requests; 12 ordinary sales of one segment share the other half. The platform is the
one `flashsale up --redis-cluster 3` runs: 3 masters, each with a replica, the broker on
a Redis of its own, the API handing accepted reservations on by publishing (no workers:
the task messages are dropped after each run, as in the other reservation figures).

The reference is the same traffic, through the same API settings, on one Redis with one
replica (not a cluster): what the cluster itself costs per reservation. Both keep no
append-only file, as the cluster's nodes do.

Per run, every master's `INFO commandstats` and `INFO cpu` are read before and after
(flashsale/local/masters.py): its CPU time per accepted reservation, its share of all
masters' CPU time, and the load spread (the largest share over the smallest)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from flashsale.bench import scenarios
from flashsale.bench.http_runs import reserve_calls
from flashsale.bench.processes import api_server, cpu_seconds
from flashsale.bench.run import SHOPPER_SPEC, Run
from flashsale.bench.stats import load_average, spread, summarize
from flashsale.bench.wrk import Load, WrkResult
from flashsale.clients import Role, StockRedis, redis_client, stock_redis_at
from flashsale.embedded import RedisServer, ServerError, find_redis_cli
from flashsale.invariants import Check, check_admission, redis_figures
from flashsale.local.masters import (
    MasterWork,
    master_of_segments,
    read_masters,
    share,
    work_between,
)
from flashsale.local.storage import Storage
from flashsale.sales import apply_sale
from flashsale.spec import SaleSpec
from flashsale.stock import Stock, segment_names, split

HOT = "hot"
STOCK = 100_000_000  # never sells out
SERIES_FIELDS = (
    "rps",
    "p50_ms",
    "p99_ms",
    "errors",
    "redis_cpu_us_per_reservation",
    "evalsha_us_per_reservation",
    "api_cpu_us_per_reservation",
    "spread",
    "purchases_per_call",
)
REPLICA_TIMEOUT = 30.0


def ordinary(i: int) -> str:
    return f"sale-{i}"


@dataclass
class Target:
    """One Redis setup under load: the cluster, or the single Redis of the reference."""

    name: str
    redis_url: str
    client: StockRedis
    stock: Stock

    def env(self, run: Run, broker_url: str) -> dict[str, str]:
        return run.platform.env(
            FLASHSALE_REDIS_URL=self.redis_url,
            FLASHSALE_BROKER_URL=broker_url,
            FLASHSALE_HANDOFF="publish",
            FLASHSALE_API_WORKERS=str(run.options.workers),
        )


def traffic(hot_share: float, sales: int) -> dict[str, float]:
    """Each sale's share of the requests."""
    return {HOT: hot_share} | {ordinary(i): (1 - hot_share) / sales for i in range(1, sales + 1)}


def paths_file(path: Path, shares: dict[str, float], lines: int = 240) -> Path:
    """The request paths for wrk, each sale's listed in proportion to its share."""
    rows = [
        f"/v1/sales/{sale}/reservations"
        for sale, part in shares.items()
        for _ in range(max(1, round(part * lines)))
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def expected_shares(
    client: StockRedis, shares: dict[str, float], segments: dict[str, int]
) -> dict[str, float]:
    """Each master's share of the requests as the slot map places the sales' segments
    (each segment of a sale takes an equal part of it: shoppers' home segments are a
    hash of their ids), in percent."""
    found: dict[str, float] = {}
    for sale, part in shares.items():
        names = segment_names(sale, segments.get(sale, 1))
        for address, served in master_of_segments(client, names).items():
            found[address] = found.get(address, 0.0) + 100 * part * len(served) / len(names)
    return {address: round(value, 1) for address, value in sorted(found.items())}


def check_sales(
    stock: Stock, scenario: str, sales: list[str], accepted: int, in_flight: int
) -> Check:
    """Every sale's figures add up on its own (no oversell, the outbox holds what is in
    flight), and together the units taken match the 202 answers the load generator
    counted, up to the requests still in flight when it stopped; it cannot tell which
    sale each answer came from."""
    problems, taken = [], 0
    for sale in sales:
        own = check_admission(stock, scenario, sale, 0, accepted + in_flight)
        if not own.passed:
            problems.append(f"{sale}: {own.detail}")
        figures = redis_figures(stock, sale)
        taken += figures["total"] - figures["remaining"]
    if not accepted <= taken <= accepted + in_flight:
        problems.append(f"{accepted} answers were 202 but {taken} units were taken")
    figures = {"accepted_202": accepted, "taken": taken, "sales": len(sales)}
    return Check(scenario, not problems, "; ".join(problems) or "stock adds up", figures)


def run_figures(
    result: WrkResult,
    work: list[MasterWork],
    api_cpu: float,
    calls: tuple[float, float],
) -> dict[str, Any]:
    """One timed run: throughput, latency, and the CPU time of each master and of the
    API per accepted reservation."""
    accepted = max(1, result.status.get(202, 0))
    whole = sum(w.cpu_usec for w in work)
    shares = [share(w.cpu_usec, whole) for w in work]
    # A master that did nothing at all would make the spread infinite (not valid JSON);
    # an idle master still spends some CPU on its cron and the cluster bus.
    least = max(min(shares), 0.1)
    masters = {
        w.address: {
            "cpu_us_per_reservation": round(w.cpu_usec / accepted, 2),
            "evalsha_calls": w.evalsha_calls,
            "evalsha_us_per_reservation": round(w.evalsha_usec / accepted, 2),
            "share_percent": round(s, 1),
        }
        for w, s in zip(work, shares, strict=True)
    }
    purchases, script_calls = calls
    return result.as_dict() | {
        "errors": result.unexpected(202),
        "load_average": load_average(),
        "accepted": accepted,
        "redis_cpu_us_per_reservation": round(whole / accepted, 2),
        "evalsha_us_per_reservation": round(sum(w.evalsha_usec for w in work) / accepted, 2),
        "api_cpu_us_per_reservation": round(api_cpu * 1e6 / accepted, 2),
        "spread": round(max(shares) / least, 3),
        "purchases_per_call": round(purchases / max(1.0, script_calls), 1),
        "masters": masters,
    }


def summarize_masters(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of each master's figures over the runs."""
    out: dict[str, Any] = {}
    for address in runs[0]["masters"]:
        per_run = [r["masters"][address] for r in runs]
        out[address] = {k: spread([float(m[k]) for m in per_run]) for k in per_run[0]}
    return out


def _load_sales(target: Target, run: Run, shares: dict[str, float], hot_segments: int) -> None:
    for sale in shares:
        doc: dict[str, Any] = {"sku": "BENCH-CLUSTER", "stock": STOCK, **SHOPPER_SPEC}
        doc["segments"] = hot_segments if sale == HOT else 1
        apply_sale(run.platform.sessions, target.stock, sale, SaleSpec.model_validate(doc))


def _drop_sales(target: Target, shares: dict[str, float]) -> None:
    for sale in shares:
        target.stock.remove_sale(sale)


def measure_target(
    run: Run,
    server: str,
    target: Target,
    broker: redis.Redis,
    broker_url: str,
    segments: tuple[int, ...],
) -> dict[str, Any]:
    """The traffic on one target with the hot sale over each number of segments."""
    o = run.options
    connections = max(o.connections)
    shares = traffic(o.hot_share, o.ordinary_sales)
    paths = paths_file(run.platform.workdir / "cluster-paths.txt", shares)
    log_file = run.platform.workdir / f"api-{target.name}.log"
    api = api_server(target.env(run, broker_url), log_file, server, o.workers).start()
    figures: dict[str, Any] = {}
    try:
        for hot_segments in segments:
            _load_sales(target, run, shares, hot_segments)
            load = Load(api.base, connections, o.seconds, "POST", run.tokens, None, True)
            load = dataclasses.replace(load, paths=paths)
            scenario = f"cluster/{target.name}/s{hot_segments}"
            accepted = in_flight = 0

            def after(result: WrkResult, scenario: str = scenario) -> None:
                nonlocal accepted, in_flight
                accepted += result.status.get(202, 0)
                in_flight += connections
                run.check(check_sales(target.stock, scenario, list(shares), accepted, in_flight))
                broker.unlink(scenarios.QUEUE)  # no workers here: drop the task messages

            after(run.wrk(dataclasses.replace(load, seconds=o.warmup)))
            runs = []
            for _ in range(o.runs):
                before, cpu_before = read_masters(target.client), cpu_seconds(api.pids)
                calls_before = reserve_calls(api.base)
                result = run.wrk(load)
                work = work_between(before, read_masters(target.client))
                calls = reserve_calls(api.base)
                api_cpu = cpu_seconds(api.pids) - cpu_before
                delta = (calls[0] - calls_before[0], calls[1] - calls_before[1])
                runs.append(run_figures(result, work, api_cpu, delta))
                after(result)
                r = runs[-1]
                run.log(
                    f"  {target.name} hot sale over {hot_segments} segment(s), "
                    f"c={connections}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
                    f"Redis {r['redis_cpu_us_per_reservation']:.1f} µs/reservation, "
                    f"spread {r['spread']:.2f}, errors {r['errors']}"
                )
            placement = {
                address: [split(name)[1] for name in served]
                for address, served in master_of_segments(
                    target.client, segment_names(HOT, hot_segments)
                ).items()
            }
            figures[str(hot_segments)] = summarize(runs, SERIES_FIELDS) | {
                "connections": connections,
                "masters": summarize_masters(runs),
                "hot_segments_by_master": placement,
                "expected_share_percent": expected_shares(
                    target.client, shares, {HOT: hot_segments}
                ),
            }
            _drop_sales(target, shares)
    finally:
        api.stop()
    return figures


@contextmanager
def single_redis(root: Path) -> Iterator[RedisServer]:
    """One Redis with one replica, configured as the cluster's nodes are."""
    server = RedisServer(root / "single", appendonly=False).start()
    replica: RedisServer | None = None
    try:
        replica = RedisServer(
            root / "single-replica",
            appendonly=False,
            extra_args=("--replicaof", "127.0.0.1", str(server.port)),
        ).start()
        probe = redis_client(replica.url, Role.PROBE)
        deadline = time.monotonic() + REPLICA_TIMEOUT
        while probe.info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise ServerError("the reference Redis's replica did not catch up")
            time.sleep(0.1)
        probe.close()
        yield server
    finally:
        if replica:
            replica.stop()
        server.stop()


def cluster_series(run: Run, server: str) -> dict[str, Any]:
    """The series on a local cluster, and its reference on one Redis, through the API
    on `server`; skipped (with the reason) when no redis-cli can join a cluster."""
    o = run.options
    try:
        find_redis_cli()
    except ServerError as exc:
        run.log(f"WARNING: no cluster series in this run: {exc}")
        return {"skipped": str(exc)}
    root = run.platform.workdir / "cluster-series"
    shares = traffic(o.hot_share, o.ordinary_sales)
    run.log(
        f"cluster series: a hot sale ({o.hot_share:.0%} of requests) and {o.ordinary_sales} "
        f"ordinary sales, {o.cluster_masters} masters with replicas, and one Redis"
    )
    storage = Storage(
        root / "cluster",
        database_url=run.platform.database_url,
        cluster_masters=o.cluster_masters,
        appendonly=False,
        durable=False,
        in_data_folder=False,
    ).start()
    try:
        assert storage.redis_url and storage.broker_url
        broker = redis_client(storage.broker_url, Role.BULK)
        results: dict[str, Any] = {
            "masters": o.cluster_masters,
            "ordinary_sales": o.ordinary_sales,
            "hot_share": o.hot_share,
            "connections": max(o.connections),
            "traffic": {sale: round(part, 4) for sale, part in shares.items()},
        }
        with single_redis(root) as reference:
            client = stock_redis_at(reference.url, Role.BULK)
            single = Target("single", reference.url, client, Stock(client))
            try:
                results["single"] = measure_target(
                    run, server, single, broker, storage.broker_url, o.reference_segments
                )
            finally:
                single.stock.close()
        client = stock_redis_at(storage.redis_url, Role.BULK)
        cluster = Target("cluster", storage.redis_url, client, Stock(client))
        try:
            results["cluster"] = measure_target(
                run, server, cluster, broker, storage.broker_url, o.cluster_segments
            )
        finally:
            cluster.stock.close()
        broker.close()
    finally:
        storage.stop()
    return results
