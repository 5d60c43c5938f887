"""The waiting room's series on paper (flashsale/bench/room_runs.py): its table, its
ratios beside the sold-out path and the unqueued purchase path, and its target."""

from __future__ import annotations

from typing import Any

from flashsale.bench.stats import cell, median_of

POLL_TARGET = 0.9  # polls/s at least this share of the sold-out path's requests/s
RATIO_NAMES = ("poll_vs_sold_out", "join_vs_sold_out", "queued_vs_unqueued_reservation")


def room_ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per concurrency level: polls and joins over the sold-out path (same server, same
    run), and queued over unqueued purchases (measured in turn at that level)."""
    series = results.get("room_series")
    if not series:
        return {}
    sold_out = results["servers"][series["server"]]["sold_out"]
    out: dict[str, dict[str, float]] = {}
    for level in series["poll"]:
        base = median_of(sold_out[level], "rps")
        unqueued = median_of(series["reservation_unqueued"][level], "rps")
        out[level] = {
            "poll_vs_sold_out": round(median_of(series["poll"][level], "rps") / base, 3),
            "join_vs_sold_out": round(median_of(series["join"][level], "rps") / base, 3),
            "queued_vs_unqueued_reservation": round(
                median_of(series["reservation_queued"][level], "rps") / unqueued, 3
            ),
        }
    return out


def room_targets(ratio_table: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    return [
        {
            "target": "poll_vs_sold_out",
            "what": "waiting-room polls/s / sold-out path",
            "connections": int(level),
            "goal": POLL_TARGET,
            "value": ratios["poll_vs_sold_out"],
            "met": ratios["poll_vs_sold_out"] >= POLL_TARGET,
        }
        for level, ratios in ratio_table.items()
        if "poll_vs_sold_out" in ratios
    ]


def room_markdown(results: dict[str, Any]) -> list[str]:
    series = results.get("room_series")
    if not series:
        return []
    server = series["server"]
    rows = [
        ("sold-out path (POST, stock 0)", results["servers"][server]["sold_out"]),
        ("poll (GET queue, shoppers who joined)", series["poll"]),
        ("join (POST queue, first joins)", series["join"]),
        ("reservation, sale without a room", series["reservation_unqueued"]),
        ("reservation, queued sale (all admitted)", series["reservation_queued"]),
    ]
    lines = [
        "",
        f"## Waiting room series ({server})",
        "",
        "Joins and polls of a waiting room beside the sold-out path, and purchases on a "
        "sale behind a room (every shopper admitted) beside a sale without one, measured "
        f"in turn at each level. Polls: {results['settings']['users']:,} shoppers who "
        f"joined a room letting in {series['room']['admitPerSecond']:g}/s; joins: each "
        "from a shopper new to the sale (a fresh sale per run; the share that were first "
        "joins is in brackets). Server and Redis CPU µs per answer, median of the runs.",
        "",
        "| figure | connections | requests/s | p50 ms | p99 ms | errors | server µs | Redis µs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, figure in rows:
        for level, f in figure.items():
            label = name
            if "first_joins_share" in f:
                label += f" [{f['first_joins_share']:.0%}]"
            cpu = [
                f"{f[k]['median']:,.0f}" if k in f else "—"
                for k in ("server_cpu_us_per_request", "redis_cpu_us_per_request")
            ]
            lines.append(
                f"| {label} | {level} | {cell(f, 'rps')} | {cell(f, 'p50_ms', 1)} | "
                f"{cell(f, 'p99_ms', 1)} | {int(f['errors']['max'])} | " + " | ".join(cpu) + " |"
            )
    ratios = room_ratios(results)
    lines += [
        "",
        "| connections | polls / sold-out path (target ≥ "
        f"{POLL_TARGET:g}) | joins / sold-out path | queued / unqueued purchases |",
        "|---|---|---|---|",
    ]
    for level, r in ratios.items():
        met = "" if r["poll_vs_sold_out"] >= POLL_TARGET else " (**missed**)"
        lines.append(
            f"| {level} | {r['poll_vs_sold_out']:.3g}{met} | {r['join_vs_sold_out']:.3g} | "
            f"{r['queued_vs_unqueued_reservation']:.3g} |"
        )
    return lines
