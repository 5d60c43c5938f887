"""The HTTP figures on one server: /healthz, the reservation path, the sold-out path."""

from __future__ import annotations

import urllib.request
from typing import Any

from flashsale.api.server import DEFAULT_SERVER
from flashsale.bench import scenarios
from flashsale.bench.processes import api_server
from flashsale.bench.room_runs import room_series
from flashsale.bench.run import Run
from flashsale.bench.wrk import Load, WrkResult
from flashsale.invariants import check_admission


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


def http_figures(
    run: Run, server: str, with_sold_out: bool = True, with_room: bool = False
) -> dict[str, Any]:
    """/healthz, the reservation path and (optionally) the sold-out path on one server;
    `with_room`: the waiting room's series after them, under "room"."""
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
            if live["sale"]:
                # The last level's reservations are checked and no worker will take them:
                # free them, so that Redis's data set (and each AOF rewrite's copy of it)
                # holds one level's reservations, not every level's.
                p.drop_sale_keys(live["sale"])
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
                    p.stock,
                    f"reservation/{server}/c{connections}",
                    live["sale"],
                    live["accepted"],
                    live["in_flight"],
                )
            )
            p.redis.unlink(scenarios.QUEUE)  # no workers here: drop the task messages
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
                    check_admission(p.stock, f"sold_out/{server}/c{c}", sold_out, 0)
                ),
                api.pids,
            )
        if with_room:
            figures["room"] = room_series(run, api, server)
    finally:
        api.stop()
    for sale in p.sales:
        if sale.startswith(("live-", "soldout-")):
            p.drop_sale_keys(sale)
    return figures
