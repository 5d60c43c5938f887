"""Several runs of one figure: median with min and max."""

from __future__ import annotations

import os
import statistics
from typing import Any


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def summarize(runs: list[dict[str, Any]], fields: tuple[str, ...]) -> dict[str, Any]:
    """{"runs": [...], field: {"median", "min", "max"}, ...} over the runs' values."""
    return {"runs": runs} | {f: spread([float(r[f]) for r in runs]) for f in fields}


def load_average() -> float:
    """One-minute load of the machine, recorded with each figure (it is shared)."""
    return round(os.getloadavg()[0], 2)


def cpu_times() -> tuple[int, int]:
    """(all, idle) CPU time of the whole machine so far, in clock ticks (Linux /proc/stat;
    (0, 0) elsewhere)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return sum(ticks), ticks[3] + ticks[4]  # idle and iowait


def busy_between(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time that was busy between two `cpu_times`."""
    total = after[0] - before[0]
    return round(1 - (after[1] - before[1]) / total, 3) if total > 0 else 0.0


def median_of(figure: dict[str, Any], field: str) -> float:
    """The median of a summarized field."""
    return float(figure[field]["median"])


def cell(figure: dict[str, Any], field: str, digits: int = 0) -> str:
    """A summarized field as a table cell: "median (min–max)"."""
    s = figure[field]
    fmt = f"{{:,.{digits}f}}"
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"
