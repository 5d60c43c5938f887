"""A PNG of the sale over time: stock and orders above, answers per second below, and
with a waiting room, the queue between them: shoppers waiting, admitted and not yet
bought, and admissions that expired."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

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
    ("not_admitted", "tab:brown"),
)


def write_chart(
    path: Path,
    log: CrowdLog,
    timeline: Timeline,
    marks: dict[str, float],
    title: str,
    room: bool = False,
) -> Path:
    if room:
        fig, (top, middle, bottom) = plt.subplots(
            3, 1, figsize=(11, 9.5), sharex=True, height_ratios=(3, 2, 2)
        )
        axes: tuple[Any, ...] = (top, middle, bottom)
        _room_panel(middle, timeline)
    else:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
        axes = (top, bottom)
    times = [s.at for s in timeline.samples]
    top.plot(times, [s.remaining for s in timeline.samples], label="remaining stock")
    top.plot(times, [s.orders for s in timeline.samples], label="orders persisted")
    top.plot(times, [s.paid for s in timeline.samples], label="orders paid")
    top.plot(times, [s.expired for s in timeline.samples], label="orders expired")
    top.axhline(timeline.total, color="black", linewidth=0.8, linestyle=":", label="total")
    top.set_ylabel("units / orders")
    top.set_ylim(bottom=-timeline.total * 0.03, top=timeline.total * 1.6)
    # With a room the marks start at 0 (the room opens): the legend goes right.
    top.legend(loc="upper center" if room else "upper left", ncol=3, fontsize=9)
    top.set_title(title)

    end = max([*times, *(c.at for c in log.clicks), *(c.at for c in log.room_calls), 1.0])
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
    if room:
        calls = Counter(int(c.at / BUCKET) for c in log.room_calls)
        bottom.step(
            edges,
            [calls.get(i, 0) / BUCKET for i in range(buckets)],
            where="post",
            color="black",
            linewidth=0.9,
            label="joins + polls /s",
        )
    bottom.set_ylabel("answers per second")
    bottom.set_xlabel("seconds since the sale opened")
    bottom.legend(loc="upper right", fontsize=9)
    for label, at in marks.items():
        for axis in axes:
            axis.axvline(at, color="tab:red", linewidth=0.8, linestyle="--")
        top.annotate(
            label, (at, timeline.total * 1.55), rotation=90, va="top", ha="right", fontsize=8
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _room_panel(axis: Any, timeline: Timeline) -> None:
    """Shoppers waiting (left axis) beside those admitted and not yet bought and the
    admissions that expired (right axis: a few hundred against thousands)."""
    samples = [s for s in timeline.samples if s.room_read[1] > 0]
    times = [s.at for s in samples]
    waiting = [s.waiting for s in samples]
    axis.plot(times, waiting, color="tab:blue", label="waiting (queue length)")
    axis.set_ylabel("shoppers waiting")
    axis.set_ylim(bottom=0, top=max([*waiting, 1]) * 1.45)  # room for the legend
    right = axis.twinx()
    right.plot(
        times, [s.admitted for s in samples], color="tab:green", label="admitted, not bought"
    )
    right.plot(times, [s.expiries for s in samples], color="tab:red", label="admissions expired")
    right.set_ylabel("admitted / expired")
    highest = max([*(s.admitted for s in samples), *(s.expiries for s in samples), 1])
    right.set_ylim(bottom=0, top=highest * 1.45)
    lines = axis.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    axis.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center", ncol=3, fontsize=9)
