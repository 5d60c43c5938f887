"""Redis's own figures: the reserve script's ceiling under redis-benchmark, and memory
per live reservation."""

from __future__ import annotations

from typing import Any

from flashsale.bench import scenarios
from flashsale.bench.run import Run
from flashsale.bench.stats import load_average, summarize


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


def redis_memory(run: Run) -> dict[str, Any]:
    count = run.options.memory_reservations
    run.log(f"Redis memory over {count:,} live reservations")
    sale = run.new_sale("memory", count)
    result = scenarios.memory_per_reservation(run.platform, sale, count, run.backlog_batch())
    run.log(f"  {result['bytes_per_reservation']:,.0f} bytes per live reservation")
    run.platform.drop_sale_keys(sale)
    return result
