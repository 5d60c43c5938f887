"""`flashsale bench --quick`: the whole runner end to end, as a smoke run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FLASHSALE

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None,
    reason="wrk not installed (apt-get install wrk; `make bench` installs it when root)",
)


def test_quick_run_writes_every_figure_and_checks_invariants(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    done = subprocess.run(
        [FLASHSALE, "--log-level", "WARNING", "bench", "--quick", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [result_file] = list(tmp_path.glob("*.json"))
    results = json.loads(result_file.read_text())

    default = results["settings"]["default_server"]
    for figure in ("healthz", "reservation", "sold_out"):
        level = results["servers"][default][figure]["64"]
        assert level["rps"]["median"] > 0
        assert level["p99_ms"]["median"] >= level["p50_ms"]["median"] > 0
        assert level["errors"]["max"] == 0
        assert len(level["runs"]) == results["settings"]["runs"]
    for baseline in ("sql_baseline", "sql_baseline_async_commit"):
        assert results[baseline]["64"]["rps"]["median"] > 0
    assert results["drain"]["orders_per_second"]["median"] > 0
    assert results["insert_ceiling"]["rows_per_second"]["median"] > 0
    assert results["redis_memory"]["bytes_per_reservation"] > 0
    ratios = results["ratios"]["64"]
    assert ratios["reservation_vs_sql_throughput"] > 0
    assert {t["target"] for t in results["targets"]} >= {
        "reservation_vs_healthz",
        "sold_out_vs_healthz",
        "drain_vs_insert_ceiling",
    }

    invariants = results["invariants"]
    assert invariants["ok"] is True
    scenarios = {check["scenario"].split("/")[0] for check in invariants["checks"]}
    assert scenarios == {
        "reservation",
        "sold_out",
        "sql_baseline",
        "worker_drain",
        "drain_by_size_1",
        "drain_by_size_256",
        "cluster",
        "poll",
        "join",
        "reservation_unqueued",
        "reservation_queued",
    }
    assert results["backlog_per_message"] >= 1
    assert results["servers"][default]["reservation"]["64"]["purchases_per_call"] >= 1
    for size in ("1", "256"):
        assert results["drain_by_message_size"][size]["orders_per_second"] > 0
    drained = next(c for c in invariants["checks"] if c["scenario"] == "worker_drain")
    assert drained["figures"]["order_rows"] == drained["figures"]["reservations"] > 0

    # The cluster series, quick: the hot sale over 3 segments on 3 masters, one Redis beside.
    series = results["cluster_series"]
    assert list(series["cluster"]) == ["3"] and list(series["single"]) == ["1"]
    assert len(series["cluster"]["3"]["masters"]) == 3
    assert series["cluster"]["3"]["redis_cpu_us_per_reservation"]["median"] > 0
    assert {t["target"] for t in results["targets"]} >= {
        "cluster_largest_share_vs_even",
        "cluster_redis_cpu_vs_single",
    }

    # The waiting room's series: joins and polls beside the sold-out path, purchases on a
    # queued sale beside an unqueued one.
    room = results["room_series"]
    for figure in ("poll", "join", "reservation_unqueued", "reservation_queued"):
        assert room[figure]["64"]["rps"]["median"] > 0 and room[figure]["64"]["errors"]["max"] == 0
    assert {"poll_vs_sold_out", "queued_vs_unqueued_reservation"} <= set(ratios)
    assert "poll_vs_sold_out" in {t["target"] for t in results["targets"]}

    table = (tmp_path / results["table"]).read_text()
    assert "## Waiting room series" in table
    assert "SQL row-lock baseline" in table and "## Targets" in table
    assert "## Cluster series: 3 masters" in table
    for chart in results["charts"]:
        assert (tmp_path / chart).read_bytes().startswith(b"\x89PNG")
