"""The cluster series in the results: its two targets, its tables, and what one sale
reaches on more masters, on paper (flashsale/bench/cluster_runs.py measures it)."""

from __future__ import annotations

from typing import Any

from flashsale.bench.stats import cell, median_of

# The cluster series' targets, with the hot sale over as many segments as masters.
SPREAD_GOAL = 1.3  # largest master's share at most this many times an even share
CLUSTER_CPU_GOAL = 1.15  # Redis CPU per reservation at most this many times one Redis's
# On paper: the share of a core a master's main thread may use before latency suffers.
MASTER_BUSY = 0.8


def cluster_targets(series: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The cluster series' two targets, where the series measured what they need."""
    if not series or "skipped" in series:
        return []
    masters = int(series["masters"])
    at = series["cluster"].get(str(masters))
    verdicts: list[dict[str, Any]] = []
    if at is None:
        return verdicts
    connections = int(series["connections"])
    largest = max(m["share_percent"]["median"] for m in at["masters"].values())
    value = round(largest * masters / 100, 3)
    verdicts.append(
        {
            "target": "cluster_largest_share_vs_even",
            "what": f"largest master's share / an even share (hot sale over {masters} "
            f"segments, {masters} masters)",
            "connections": connections,
            "goal": SPREAD_GOAL,
            "value": value,
            "met": value <= SPREAD_GOAL,
            "at_most": True,
        }
    )
    single = series["single"].get("1")
    if single:
        value = round(
            median_of(at, "redis_cpu_us_per_reservation")
            / median_of(single, "redis_cpu_us_per_reservation"),
            3,
        )
        verdicts.append(
            {
                "target": "cluster_redis_cpu_vs_single",
                "what": f"Redis CPU per reservation, all masters (hot sale over {masters} "
                "segments) / one Redis (one segment)",
                "connections": connections,
                "goal": CLUSTER_CPU_GOAL,
                "value": value,
                "met": value <= CLUSTER_CPU_GOAL,
                "at_most": True,
            }
        )
    return verdicts


def on_paper(us_per_reservation: float, masters: int) -> float:
    """Reservations/s one sale reaches on `masters` masters if its segments spread evenly
    over them and each master's main thread may be MASTER_BUSY busy."""
    return masters * MASTER_BUSY * 1e6 / us_per_reservation


def cluster_markdown(series: dict[str, Any], one_sale_us: float | None = None) -> list[str]:
    """The series' tables; `one_sale_us`: Redis CPU per reservation of the single-sale
    reservation figure (one sale, large calls), for the second column on paper."""
    if "skipped" in series:
        return ["", "## Cluster series", "", f"Skipped: {series['skipped']}", ""]
    masters, connections = series["masters"], series["connections"]
    single_one = series["single"].get("1")
    lines = [
        "",
        f"## Cluster series: {masters} masters, each with a replica, {connections} connections",
        "",
        f"A hot sale takes {series['hot_share']:.0%} of the requests, "
        f"{series['ordinary_sales']} ordinary sales of one segment share the rest; the API "
        "(one process, publish handoff, broker on a Redis of its own) on a local Redis "
        "Cluster, and the same on one Redis with one replica. Redis CPU is every master's "
        "`INFO cpu` (the whole process) per accepted reservation; spread is the largest "
        "master's share of that CPU over the smallest's. Median (min–max) of the runs.",
        "",
        "| Redis | hot sale segments | reservations/s | p99 ms | Redis CPU µs / reservation "
        "| vs one Redis, 1 segment | of which EVALSHA µs | API CPU µs | purchases per call "
        "| spread |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    reference = median_of(single_one, "redis_cpu_us_per_reservation") if single_one else 0.0
    for name, label in (("single", "one Redis"), ("cluster", f"{masters} masters")):
        for segments, f in series[name].items():
            cpu = median_of(f, "redis_cpu_us_per_reservation")
            ratio = f"{cpu / reference:.2f}" if reference else "—"
            lines.append(
                f"| {label} | {segments} | {cell(f, 'rps')} | {cell(f, 'p99_ms', 1)} | "
                f"{cell(f, 'redis_cpu_us_per_reservation', 1)} | {ratio} | "
                f"{median_of(f, 'evalsha_us_per_reservation'):.1f} | "
                f"{median_of(f, 'api_cpu_us_per_reservation'):.0f} | "
                f"{median_of(f, 'purchases_per_call'):.1f} | {cell(f, 'spread', 2)} |"
            )
    lines += [
        "",
        "Each master, on the cluster: the hot sale's segments it serves, its share of the "
        "requests as the slot map places every sale's segments (expected), its measured "
        "share of the masters' CPU, and its CPU per accepted reservation (of all of them).",
        "",
        "| hot sale segments | master | hot segments served | expected share | measured share "
        "| CPU µs / reservation | EVALSHA calls |",
        "|---|---|---|---|---|---|---|",
    ]
    for segments, f in series["cluster"].items():
        for address, m in f["masters"].items():
            served = ", ".join(map(str, f["hot_segments_by_master"].get(address, []))) or "none"
            expected = f["expected_share_percent"].get(address, 0.0)
            lines.append(
                f"| {segments} | {address} | {served} | {expected:.1f}% | "
                f"{m['share_percent']['median']:.1f}% | "
                f"{m['cpu_us_per_reservation']['median']:.1f} | "
                f"{m['evalsha_calls']['median']:,.0f} |"
            )
    cost = series["cluster"].get(str(masters)) or next(iter(series["cluster"].values()))
    us, per_call = (
        median_of(cost, "redis_cpu_us_per_reservation"),
        median_of(cost, "purchases_per_call"),
    )
    header = f"| masters | at {us:.1f} µs (this series, {per_call:.1f} per call) |"
    if one_sale_us:
        header += f" at {one_sale_us:.1f} µs (one sale, the reservation figure above) |"
    lines += [
        "",
        "On paper, one sale alone: reservations/s when its segments spread evenly over the "
        f"masters and each master's main thread is at most {MASTER_BUSY:.0%} busy, at the "
        "Redis CPU per reservation measured here (all masters, hot sale over as many "
        "segments as masters, the purchases per script call this series' mix allowed) and "
        "at that of the single-sale figure (larger calls); the API, the network and the "
        "broker scale out beside it.",
        "",
        header,
        "|---|---|" + ("---|" if one_sale_us else ""),
    ]
    for n in (3, 6, 12):
        row = f"| {n} | {on_paper(us, n):,.0f} |"
        if one_sale_us:
            row += f" {on_paper(one_sale_us, n):,.0f} |"
        lines.append(row)
    return lines
