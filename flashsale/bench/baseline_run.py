"""The SQL row-lock baseline run: the classic design, on the same PostgreSQL and server."""

from __future__ import annotations

from typing import Any

from flashsale.bench.processes import baseline_server
from flashsale.bench.run import Run
from flashsale.bench.wrk import Load, WrkResult
from flashsale.invariants import Check


def sql_baseline(run: Run, server: str, synchronous_commit: str) -> dict[str, Any]:
    """The classic row-lock design on the same PostgreSQL, same server and workers."""
    from flashsale.bench import sql_baseline as baseline

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
