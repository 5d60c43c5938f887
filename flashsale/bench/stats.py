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
