"""`flashsale demo` end to end with a small crowd: it must pass its own invariants."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from flashsale.demo.crowd import Click, CrowdLog
from flashsale.demo.timeline import Sample, Timeline
from flashsale.invariants import check_invariants
from flashsale.sales import sale_status
from tests.conftest import FLASHSALE, Platform


def test_demo_runs_a_whole_sale_and_every_invariant_passes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    out = tmp_path / "demo"
    args = ["--stock", "30", "--shoppers", "300", "--spammers", "10", "--second-wave", "80"]
    run = subprocess.run(
        [FLASHSALE, "demo", *args, "--payment-timeout", "2", "--out", str(out)],
        env=env | {"COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "all invariants hold" in run.stdout and "FAIL" not in run.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True
    assert len(report["checks"]) == 6 and all(c["passed"] for c in report["checks"])
    # The story the demo tells: sold out, spammers held back, unpaid units resold.
    assert report["accepted"] == report["orders_persisted"]
    assert report["sold_out"] > 0 and report["rate_limited"] > 0
    assert report["expired"] > 0 and report["units_returned"] == report["expired"]
    assert report["paid"] == report["total"] == 30 and report["final_remaining"] == 0
    assert report["other_answers"] == 0
    assert (out / "sale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out / "sale.png") in run.stdout


def test_the_demo_checks_can_fail(platform: Platform) -> None:
    """A 202 without an order, an instant above stock and an odd answer are caught."""
    sale = platform.sale(stock=5)
    status = sale_status(platform.sessions, platform.stock, sale)
    assert status is not None
    log = CrowdLog()
    log.clicks += [
        Click(0.1, 1, "u1", "accepted", 202, 0.01, str(uuid.uuid4())),
        Click(0.2, 1, "u2", "internal_error", 500, 0.01, None),
    ]
    timeline = Timeline(sale, 5, started=0.0)
    timeline.samples.append(Sample(0.3, 0, 2, 4, 0, 0, 0, 0))  # 6 units taken of 5
    verdicts = {
        c.name: c.passed
        for c in check_invariants(log, timeline, status, platform.sessions, platform.stock, 1)
    }
    assert verdicts == {
        "no oversell at any instant": False,
        "stock adds up at rest": True,
        "every 202 became exactly one order": False,
        "every expired order returned its units once": True,
        "no user above the per-user limit": True,
        "only answers the contract allows": False,
    }
