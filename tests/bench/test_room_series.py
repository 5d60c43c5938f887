"""The benchmark's waiting-room series: its ratios and target on paper, and a smallest
real run (joins, polls, purchases on a queued sale beside an unqueued one)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flashsale.bench.platform import JWT_SECRET, BenchPlatform
from flashsale.bench.room_report import room_markdown, room_ratios, room_targets
from flashsale.bench.run import Options, Run
from flashsale.bench.wrk import write_tokens


def _figure(rps: float) -> dict[str, Any]:
    spread = {"median": rps, "min": rps, "max": rps}
    one = {"median": 1.0, "min": 1.0, "max": 1.0}
    zero = {"median": 0.0, "min": 0.0, "max": 0.0}
    return {"rps": spread, "p50_ms": one, "p99_ms": one, "errors": zero}


def _results(poll: float) -> dict[str, Any]:
    join = _figure(6_000.0) | {"first_joins_share": 1.0}
    series = {
        "server": "granian",
        "room": {"admitPerSecond": 50},
        "poll": {"64": _figure(poll)},
        "join": {"64": join},
        "reservation_unqueued": {"64": _figure(5_000.0)},
        "reservation_queued": {"64": _figure(4_500.0)},
    }
    return {
        "settings": {"users": 10_000},
        "servers": {"granian": {"sold_out": {"64": _figure(10_000.0)}}},
        "room_series": series,
    }


def test_polls_are_judged_against_the_sold_out_path_of_the_same_run() -> None:
    ratios = room_ratios(_results(poll=9_500.0))
    assert ratios == {
        "64": {
            "poll_vs_sold_out": 0.95,
            "join_vs_sold_out": 0.6,
            "queued_vs_unqueued_reservation": 0.9,
        }
    }
    [target] = room_targets(ratios)
    assert (target["connections"], target["goal"], target["met"]) == (64, 0.9, True)
    [missed] = room_targets(room_ratios(_results(poll=8_000.0)))
    assert missed["met"] is False and missed["value"] == 0.8
    text = "\n".join(room_markdown(_results(poll=8_000.0)))
    assert "| join (POST queue, first joins) [100%] | 64 | 6,000 (6,000–6,000) |" in text
    assert "| 64 | 0.8 (**missed**) | 0.6 | 0.9 |" in text
    assert room_ratios({"servers": {}}) == {}


@pytest.fixture
def bench_platform() -> Iterator[BenchPlatform]:
    platform = BenchPlatform.start()
    try:
        yield platform
    finally:
        platform.close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
def test_a_smallest_room_series_measures_joins_polls_and_queued_purchases(
    bench_platform: BenchPlatform,
) -> None:
    from flashsale.bench.processes import api_server
    from flashsale.bench.room_runs import room_series

    options = Options.quick_run(bench_platform.workdir / "out")
    options.connections, options.users, options.join_users = (16,), 200, 30_000
    run = Run(options, bench_platform, Path(), lambda _: None)
    run.tokens = write_tokens(bench_platform.workdir / "tokens.txt", JWT_SECRET, options.users)
    env = bench_platform.env(FLASHSALE_API_WORKERS="1")
    api = api_server(env, bench_platform.workdir / "api.log", "granian", 1).start()
    try:
        series = room_series(run, api, "granian")
    finally:
        api.stop()

    for figure in ("poll", "join", "reservation_unqueued", "reservation_queued"):
        level = series[figure]["16"]
        assert level["rps"]["median"] > 0 and level["errors"]["max"] == 0, figure
    # Every join of a timed run came from a shopper new to that sale.
    assert series["join"]["16"]["first_joins_share"] >= 0.95
    scenarios = {c.name.split("/")[0] for c in run.checks}
    assert scenarios == {"poll", "join", "reservation_unqueued", "reservation_queued"}
    assert all(c.passed for c in run.checks), [c.detail for c in run.checks]
    queued = [c for c in run.checks if c.name.startswith("reservation_queued")]
    assert queued[-1].figures["accepted_202"] > 0  # admitted shoppers bought, no 409
