"""A PNG of the sale over time: stock and orders above, answers per second below."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

from flashsale.demo.crowd import CrowdLog  # noqa: E402
from flashsale.demo.timeline import Timeline  # noqa: E402

BUCKET = 0.5  # seconds per bar
SERIES = (
    ("accepted", "tab:green"),
    ("sold_out", "tab:gray"),
    ("rate_limited", "tab:orange"),
    ("limit_reached", "tab:purple"),
)


def write_chart(
    path: Path, log: CrowdLog, timeline: Timeline, marks: dict[str, float], title: str
) -> Path:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    times = [s.at for s in timeline.samples]
    top.plot(times, [s.remaining for s in timeline.samples], label="remaining stock")
    top.plot(times, [s.orders for s in timeline.samples], label="orders persisted")
    top.plot(times, [s.paid for s in timeline.samples], label="orders paid")
    top.plot(times, [s.expired for s in timeline.samples], label="orders expired")
    top.axhline(timeline.total, color="black", linewidth=0.8, linestyle=":", label="total")
    top.set_ylabel("units / orders")
    top.set_ylim(bottom=-timeline.total * 0.03, top=timeline.total * 1.6)
    top.legend(loc="upper left", ncol=3, fontsize=9)
    top.set_title(title)

    end = max([*times, *(c.at for c in log.clicks), 1.0])
    buckets = math.ceil(end / BUCKET) + 1
    edges = [i * BUCKET for i in range(buckets)]
    bottom_of = [0.0] * buckets
    for outcome, colour in SERIES:
        counts = Counter(int(c.at / BUCKET) for c in log.clicks if c.outcome == outcome)
        per_second = [counts.get(i, 0) / BUCKET for i in range(buckets)]
        bottom.bar(
            edges,
            per_second,
            width=BUCKET,
            align="edge",
            bottom=bottom_of,
            color=colour,
            label=outcome.replace("_", " ") + " /s",
        )
        bottom_of = [b + v for b, v in zip(bottom_of, per_second, strict=True)]
    bottom.set_ylabel("answers per second")
    bottom.set_xlabel("seconds since the sale opened")
    bottom.legend(loc="upper right", fontsize=9)
    for label, at in marks.items():
        for axis in (top, bottom):
            axis.axvline(at, color="tab:red", linewidth=0.8, linestyle="--")
        top.annotate(
            label, (at, timeline.total * 1.55), rotation=90, va="top", ha="right", fontsize=8
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
