"""The benchmark's cluster series: the traffic it sends, the figures it derives, and a
smallest real run on a local cluster of 3 masters beside one Redis."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flashsale.bench.cluster_report import cluster_markdown, cluster_targets, on_paper
from flashsale.bench.cluster_runs import (
    HOT,
    paths_file,
    run_figures,
    traffic,
)
from flashsale.bench.platform import JWT_SECRET, BenchPlatform
from flashsale.bench.run import Options, Run
from flashsale.bench.wrk import WrkResult, write_tokens
from flashsale.local.masters import MasterWork


def test_the_hot_sale_takes_its_share_and_the_others_split_the_rest(tmp_path: Path) -> None:
    shares = traffic(0.5, 12)
    assert len(shares) == 13 and shares[HOT] == 0.5
    assert abs(sum(shares.values()) - 1) < 1e-9
    lines = paths_file(tmp_path / "paths.txt", shares).read_text().split()
    assert lines.count(f"/v1/sales/{HOT}/reservations") == 120 and len(lines) == 240
    assert lines.count("/v1/sales/sale-7/reservations") == 10


def test_each_master_is_charged_its_cpu_per_accepted_reservation() -> None:
    result = WrkResult(1000, 1.0, 1, 2, 3, 4, 0, {202: 1000})
    work = [MasterWork("a:1", 10, 100, 200, 30_000), MasterWork("b:2", 5, 50, 90, 10_000)]
    figures = run_figures(result, work, api_cpu=0.05, calls=(1000.0, 250.0))
    assert figures["redis_cpu_us_per_reservation"] == 40.0
    assert figures["evalsha_us_per_reservation"] == 0.15
    assert figures["api_cpu_us_per_reservation"] == 50.0
    assert figures["purchases_per_call"] == 4.0
    assert figures["spread"] == 3.0 and figures["errors"] == 0
    assert figures["masters"]["a:1"]["share_percent"] == 75.0
    assert figures["masters"]["b:2"]["cpu_us_per_reservation"] == 10.0


def _figure(value: float) -> dict[str, float]:
    return {"median": value, "min": value, "max": value}


def _series(largest: float, cluster_us: float) -> dict[str, Any]:
    def level(us: float, shares: list[float]) -> dict[str, Any]:
        masters = {
            f"m:{i}": {
                "share_percent": _figure(s),
                "cpu_us_per_reservation": _figure(us * s / 100),
                "evalsha_calls": _figure(100),
            }
            for i, s in enumerate(shares)
        }
        fields = ("rps", "p99_ms", "evalsha_us_per_reservation", "api_cpu_us_per_reservation")
        return {f: _figure(1.0) for f in fields} | {
            "redis_cpu_us_per_reservation": _figure(us),
            "purchases_per_call": _figure(4.0),
            "spread": _figure(max(shares) / min(shares)),
            "masters": masters,
            "hot_segments_by_master": {"m:0": [0, 1], "m:1": [2], "m:2": []},
            "expected_share_percent": {"m:0": 50.0, "m:1": 30.0, "m:2": 20.0},
        }

    rest = (100 - largest) / 2
    return {
        "masters": 3,
        "connections": 256,
        "hot_share": 0.5,
        "ordinary_sales": 12,
        "single": {"1": level(40.0, [100.0])},
        "cluster": {"3": level(cluster_us, [largest, rest, rest])},
    }


def test_the_cluster_targets_are_judged_at_as_many_segments_as_masters() -> None:
    met = {t["target"]: t for t in cluster_targets(_series(largest=40.0, cluster_us=44.0))}
    assert met["cluster_largest_share_vs_even"]["value"] == 1.2
    assert met["cluster_redis_cpu_vs_single"]["value"] == 1.1
    assert all(t["met"] and t["at_most"] for t in met.values())
    missed = {t["target"]: t for t in cluster_targets(_series(largest=50.0, cluster_us=60.0))}
    assert not missed["cluster_largest_share_vs_even"]["met"]
    assert not missed["cluster_redis_cpu_vs_single"]["met"]
    assert cluster_targets({"skipped": "no redis-cli"}) == []
    assert cluster_targets(None) == []


def test_the_series_tables_and_the_figures_on_paper() -> None:
    assert on_paper(40.0, 3) == pytest.approx(60_000)  # 3 masters x 80% x 25,000/s
    text = "\n".join(cluster_markdown(_series(40.0, 44.0), one_sale_us=30.0))
    assert "| one Redis | 1 |" in text and "| 3 masters | 3 |" in text
    assert "| 3 | m:0 | 0, 1 | 50.0% | 40.0% |" in text and "| 3 | m:2 | none |" in text
    assert "| 12 | 218,182 | 320,000 |" in text  # 12 x 0.8 x 1e6 / 44 and / 30


@pytest.fixture
def bench_platform() -> Iterator[BenchPlatform]:
    platform = BenchPlatform.start()
    try:
        yield platform
    finally:
        platform.close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
def test_a_smallest_series_measures_every_master_and_keeps_the_invariants(
    bench_platform: BenchPlatform,
) -> None:
    from flashsale.bench.cluster_runs import cluster_series

    options = Options.quick_run(bench_platform.workdir / "out")
    options.connections, options.users, options.ordinary_sales = (16,), 200, 3
    run = Run(options, bench_platform, Path(), lambda _: None)
    run.tokens = write_tokens(bench_platform.workdir / "tokens.txt", JWT_SECRET, options.users)
    series = cluster_series(run, "granian")

    assert set(series["traffic"]) == {HOT, "sale-1", "sale-2", "sale-3"}
    single, cluster = series["single"]["1"], series["cluster"]["3"]
    assert len(single["masters"]) == 1 and len(cluster["masters"]) == 3
    for level in (single, cluster):
        assert level["rps"]["median"] > 0 and level["errors"]["max"] == 0
        assert level["redis_cpu_us_per_reservation"]["median"] > 0
        shares = [m["share_percent"]["median"] for m in level["masters"].values()]
        assert abs(sum(shares) - 100) < 1 and level["spread"]["median"] >= 1
        assert abs(sum(level["expected_share_percent"].values()) - 100) < 0.5
    served = [k for ks in cluster["hot_segments_by_master"].values() for k in ks]
    assert sorted(served) == [0, 1, 2]
    assert set(cluster["hot_segments_by_master"]) == set(cluster["masters"])

    checks = {c.name: c for c in run.checks}
    assert set(checks) == {"cluster/single/s1", "cluster/cluster/s3"}
    assert all(c.passed for c in run.checks), [c.detail for c in run.checks]
    assert (
        checks["cluster/cluster/s3"].figures["taken"]
        >= checks["cluster/cluster/s3"].figures["accepted_202"]
        > 0
    )
