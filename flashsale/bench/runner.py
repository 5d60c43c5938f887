"""One benchmark run: every figure side by side on the same machine, in the same run.
This module assembles the results; each figure is measured by its own module."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flashsale.api.server import DEFAULT_SERVER
from flashsale.bench import scenarios
from flashsale.bench.baseline_run import sql_baseline
from flashsale.bench.cluster_runs import cluster_series
from flashsale.bench.drain import worker_drain
from flashsale.bench.http_runs import http_figures
from flashsale.bench.machine import machine
from flashsale.bench.platform import JWT_SECRET, BenchPlatform
from flashsale.bench.redis_runs import redis_ceiling, redis_memory
from flashsale.bench.report import write_report
from flashsale.bench.run import Options, Run
from flashsale.bench.stats import load_average
from flashsale.bench.wrk import ToolMissing, find_wrk, write_tokens


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
            "machine": machine(),
            "settings": {
                "connections": list(options.connections),
                "runs": options.runs,
                "seconds_per_run": options.seconds,
                "warmup_seconds": options.warmup,
                "api_workers": options.workers,
                "servers": list(options.servers),
                "default_server": server,
                "users": options.users,
                "load_generator": "wrk, flashsale/bench/wrk.lua",
            },
            "load_average_at_start": load_average(),
        }
        servers: dict[str, Any] = {}
        for name in options.servers:
            servers[name] = http_figures(run, name, with_room=name == server)
        results["room_series"] = servers[server].pop("room")
        results["servers"] = servers
        results["sql_baseline"] = sql_baseline(run, server, "on")
        results["sql_baseline_async_commit"] = sql_baseline(run, server, "off")
        results["redis_ceiling"] = (
            {"skipped": missing_redis_benchmark} if missing_redis_benchmark else redis_ceiling(run)
        )
        results |= worker_drain(run)
        results["redis_memory"] = redis_memory(run)
        if options.cluster:
            results["cluster_series"] = cluster_series(run, server)
        results["invariants"] = {
            "ok": all(c.passed for c in run.checks),
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
        failed = [c for c in run.checks if not c.passed]
        for check in failed:
            log(f"INVARIANT BROKEN in {check.name}: {check.detail}")
        log("BENCHMARK FAILED: the design's invariants did not hold (see above)")
        raise SystemExit(1)
    return path


def main_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
