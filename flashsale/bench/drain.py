"""The drain measurement: backlogs of reservations persisted by the shipped worker, and
PostgreSQL's own insert ceiling beside them."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flashsale.bench import scenarios
from flashsale.bench.processes import worker_process
from flashsale.bench.run import SHOPPER_SPEC, Run
from flashsale.bench.stats import load_average, summarize
from flashsale.invariants import check_persisted


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
        while drained.complete and time.monotonic() < deadline and p.stock.outbox_size(sale):
            time.sleep(0.1)
    finally:
        worker.stop()
    run.check(check_persisted(p.stock, p.sessions, name, sale, order_ids))
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
