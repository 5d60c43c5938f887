"""Ratios, targets, and the result files: JSON, a Markdown table and PNG charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flashsale.bench.cluster_report import cluster_markdown, cluster_targets
from flashsale.bench.room_report import room_markdown, room_ratios, room_targets
from flashsale.bench.stats import cell, median_of

# (name, what, target) — evaluated per concurrency level where it says so.
TARGETS = (
    ("reservation_vs_sql_throughput", "reservation throughput / SQL row-lock baseline", 10.0),
    ("reservation_p99_vs_sql_p99", "reservation p99 / SQL baseline p99 (at most)", 0.2),
    ("reservation_vs_healthz", "reservation throughput / bare /healthz", 0.7),
    ("sold_out_vs_healthz", "sold-out throughput / bare /healthz", 0.9),
    ("drain_vs_insert_ceiling", "worker drain / PostgreSQL insert ceiling", 0.5),
)
# The SQL targets are stated at 256 connections; the others hold at every level.
TARGET_LEVELS = {"reservation_vs_sql_throughput": "256", "reservation_p99_vs_sql_p99": "256"}
ONCE = {"drain_vs_insert_ceiling"}  # no concurrency level: workers against PostgreSQL


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    default = results["servers"][results["settings"]["default_server"]]
    drain = float(results["drain"]["overall"]["orders_per_second"])
    ceiling = median_of(results["insert_ceiling"], "rows_per_second")
    out: dict[str, dict[str, float]] = {}
    for level in default["reservation"]:
        res = default["reservation"][level]
        sql = results["sql_baseline"][level]
        healthz = median_of(default["healthz"][level], "rps")
        redis_figure = results["redis_ceiling"].get(level)
        redis = median_of(redis_figure, "rps") if redis_figure else float("nan")
        out[level] = {
            "reservation_vs_sql_throughput": median_of(res, "rps") / median_of(sql, "rps"),
            "reservation_p99_vs_sql_p99": median_of(res, "p99_ms") / median_of(sql, "p99_ms"),
            "reservation_vs_healthz": median_of(res, "rps") / healthz,
            "sold_out_vs_healthz": median_of(default["sold_out"][level], "rps") / healthz,
            "reservation_vs_redis_ceiling": median_of(res, "rps") / redis,
            "reservation_vs_sql_async_commit": median_of(res, "rps")
            / median_of(results["sql_baseline_async_commit"][level], "rps"),
            "drain_vs_insert_ceiling": drain / ceiling,
        }
    for level, room in room_ratios(results).items():
        out.setdefault(level, {}).update(room)
    # NaN (a figure that was skipped) is left out: it is not valid JSON.
    return {level: {k: round(v, 3) for k, v in r.items() if v == v} for level, r in out.items()}


def targets(ratio_table: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    verdicts = []
    for name, what, goal in TARGETS:
        levels = [TARGET_LEVELS[name]] if name in TARGET_LEVELS else list(ratio_table)
        if name in ONCE:
            levels = levels[:1]
        for level in levels:
            if level not in ratio_table:
                continue
            value = ratio_table[level][name]
            at_most = name == "reservation_p99_vs_sql_p99"
            met = value <= goal if at_most else value >= goal
            connections = None if name in ONCE else int(level)
            verdicts.append(
                {"target": name, "what": what, "connections": connections, "goal": goal}
                | {"value": value, "met": met}
            )
    return verdicts


def markdown(results: dict[str, Any]) -> str:
    m, st = results["machine"], results["settings"]
    default = st["default_server"]
    lines = [
        f"# FlashSale benchmark, {results['started_at']}",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB memory, "
        f"Linux {m['kernel']}, Python {m['python']}, {m['wrk']}. "
        f"Load average {results['load_average_at_start']} at start, "
        f"{results['load_average_at_end']} at end (the machine is shared).",
        "",
        f"{st['runs']} runs of {st['seconds_per_run']:g} s after a {st['warmup_seconds']:g} s "
        f"warm-up per figure; median (min–max). API and baseline: {st['api_workers']} server "
        f"process(es), {default} unless noted; {st['users']:,} distinct users.",
        "",
        "| figure | connections | requests/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    rows = [
        ("reservation (POST, JWT, Idempotency-Key)", results["servers"][default]["reservation"]),
        ("sold-out path (POST, stock 0)", results["servers"][default]["sold_out"]),
        ("SQL row-lock baseline (POST)", results["sql_baseline"]),
        ("SQL baseline, synchronous_commit=off", results["sql_baseline_async_commit"]),
        ("bare GET /healthz (framework ceiling)", results["servers"][default]["healthz"]),
    ]
    for name, figure in rows:
        for level, f in figure.items():
            lines.append(
                f"| {name} | {level} | {cell(f, 'rps')} | {cell(f, 'p50_ms', 1)} | "
                f"{cell(f, 'p99_ms', 1)} | {int(f['errors']['max'])} |"
            )
    for level, f in results["redis_ceiling"].items():
        if level == "skipped":
            lines.append(f"| redis-benchmark EVALSHA reserve.lua | — | skipped: {f} | | | |")
            continue
        lines.append(
            f"| redis-benchmark EVALSHA reserve.lua (pipeline 16) | {level} | "
            f"{cell(f, 'rps')} | {cell(f, 'p50_ms', 2)} | {cell(f, 'p99_ms', 2)} | 0 |"
        )
    lines += [
        "",
        "CPU time per answered request, µs (median of the runs): what each answer costs "
        "the server process, Redis and the load generator, all on the same cores; the "
        "server's share of one core, the whole machine's busy share, and the AOF rewrites "
        "Redis ran during the timed runs (all runs together).",
        "",
        "| figure | connections | server | Redis | wrk | server cores | machine busy "
        "| AOF rewrites |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, figure in rows:
        for level, f in figure.items():
            if "server_cpu_us_per_request" not in f:
                continue
            cpu = [
                f"{f[k]['median']:,.0f}"
                for k in (
                    "server_cpu_us_per_request",
                    "redis_cpu_us_per_request",
                    "wrk_cpu_us_per_request",
                )
            ]
            if "server_cores" in f:  # results of earlier versions lack these
                cpu += [f"{f['server_cores']['median']:.2f}", f"{f['machine_busy']['median']:.0%}"]
                cpu.append(str(sum(int(r.get("aof_rewrites", 0)) for r in f["runs"])))
            else:
                cpu += ["—", "—", "—"]
            lines.append(f"| {name} | {level} | " + " | ".join(cpu) + " |")
    d, c = results["drain"], results["insert_ceiling"]
    lines += [
        "",
        f"Worker drain of a {results['backlog']:,}-reservation backlog, "
        f"{results.get('backlog_per_message', 1)} reservations per task message (the mean "
        "the API made at the highest concurrency above): "
        + (
            ""
            if d["overall"]["complete"]
            else f"(stopped after {d['overall']['seconds']:,.0f} s with "
            f"{d['overall']['persisted']:,} persisted) "
        )
        + f"{d['overall']['orders_per_second']:,.0f} orders/s from the first order to the last "
        f"(three slices of the backlog: {cell(d, 'orders_per_second')}); "
        "PostgreSQL insert ceiling for the same "
        f"rows: {cell(c, 'rows_per_second')} rows/s (COPY {cell(c, 'copy_rows_per_second')}, "
        f"multi-row INSERT {cell(c, 'insert_rows_per_second')}).",
        "",
    ]
    by_size = results.get("drain_by_message_size", {})
    if by_size:
        lines += [
            "The same drain with other message sizes (smaller backlogs): a task message costs "
            "its own delivery and transaction, however few reservations it carries.",
            "",
            "| reservations per message | backlog | orders/s |",
            "|---|---|---|",
        ]
        for size, f in by_size.items():
            lines.append(f"| {size} | {f['backlog']:,} | {f['orders_per_second']:,.0f} |")
        lines.append("")
    mem = results["redis_memory"]
    lines += [
        f"Redis memory: {mem['bytes_per_reservation']:,.0f} bytes per live reservation over "
        f"{mem['reservations']:,} reservations made {mem.get('reservations_per_message', 1)} "
        f"to a call, of which {mem['of_which_task_message']:,.0f} are their share of the task "
        "message waiting in the queue.",
        "",
        "## Ratios",
        "",
        "| ratio | " + " | ".join(f"c={level}" for level in results["ratios"]) + " |",
        "|---|" + "---|" * len(results["ratios"]),
    ]
    names = next(iter(results["ratios"].values())).keys()
    for name in names:
        cells = " | ".join(f"{r[name]:.3g}" for r in results["ratios"].values())
        lines.append(f"| {name} | {cells} |")
    lines += ["", "## Targets", "", "| target | connections | goal | value | met |"]
    lines.append("|---|---|---|---|---|")
    for t in results["targets"]:
        at_most = t.get("at_most", t["target"] == "reservation_p99_vs_sql_p99")
        goal = ("≤ " if at_most else "≥ ") + f"{t['goal']:g}"
        verdict = "yes" if t["met"] else "**no**"
        lines.append(
            f"| {t['what']} | {t['connections'] or '—'} | {goal} | {t['value']:.3g} | {verdict} |"
        )
    if len(results["servers"]) > 1:
        lines += ["", "## ASGI servers, same app, same run", ""]
        lines += ["| server | figure | connections | requests/s | p50 ms | p99 ms |"]
        lines.append("|---|---|---|---|---|---|")
        for server, figures in results["servers"].items():
            for name in ("healthz", "reservation", "sold_out"):
                for level, f in figures.get(name, {}).items():
                    lines.append(
                        f"| {server} | {name} | {level} | {cell(f, 'rps')} | "
                        f"{cell(f, 'p50_ms', 1)} | {cell(f, 'p99_ms', 1)} |"
                    )
    if "cluster_series" in results:
        reservation = results["servers"][default]["reservation"]
        busiest = reservation[max(reservation, key=int)]
        one_sale = busiest.get("redis_cpu_us_per_request", {}).get("median")
        lines += cluster_markdown(results["cluster_series"], one_sale)
    lines += room_markdown(results)
    inv = results["invariants"]
    failed = [c for c in inv["checks"] if not c["ok"]]
    lines += [
        "",
        "## Invariants",
        "",
        f"{len(inv['checks'])} checks after the runs: "
        + ("all held." if inv["ok"] else f"**{len(failed)} FAILED**: ")
        + "; ".join(f"{c['scenario']}: {c['detail']}" for c in failed),
        "",
    ]
    return "\n".join(lines)


def charts(results: dict[str, Any], stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    default = results["settings"]["default_server"]
    series = {
        "/healthz": results["servers"][default]["healthz"],
        "reservation": results["servers"][default]["reservation"],
        "sold-out": results["servers"][default]["sold_out"],
        "SQL baseline": results["sql_baseline"],
    }
    levels = list(results["servers"][default]["reservation"])
    paths = []
    for field, label, name in (("rps", "requests/s", "throughput"), ("p99_ms", "p99 ms", "p99")):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.8 / len(series)
        for i, (title, figure) in enumerate(series.items()):
            xs = [j + i * width for j in range(len(levels))]
            med = [figure[lv][field]["median"] for lv in levels]
            low = [m - figure[lv][field]["min"] for m, lv in zip(med, levels, strict=True)]
            high = [figure[lv][field]["max"] - m for m, lv in zip(med, levels, strict=True)]
            ax.bar(xs, med, width, yerr=[low, high], capsize=3, label=title)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(levels))])
        ax.set_xticklabels([f"{lv} connections" for lv in levels])
        ax.set_ylabel(label + " (median, min–max)")
        if field == "p99_ms":
            ax.set_yscale("log")
        ax.set_title(f"FlashSale {name}, {results['started_at']}")
        ax.legend()
        fig.tight_layout()
        path = stem.with_name(f"{stem.name}-{name}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(results: dict[str, Any], out_dir: Path, stamp: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    results["ratios"] = ratios(results)
    results["targets"] = (
        targets(results["ratios"])
        + room_targets(room_ratios(results))
        + cluster_targets(results.get("cluster_series"))
    )
    stem = out_dir / stamp
    results["charts"] = [p.name for p in charts(results, stem)]
    results["table"] = f"{stamp}.md"
    stem.with_suffix(".md").write_text(markdown(results))
    path = stem.with_suffix(".json")
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
