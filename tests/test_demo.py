"""`flashsale demo` end to end with a small crowd: it must pass its own invariants."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from flashsale.demo.crowd import Click, CrowdLog
from flashsale.demo.room import admitted_first_check, overbook_check, rate_check
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


def test_demo_on_a_redis_cluster_shows_each_masters_share(tmp_path: Path) -> None:
    """Six segments over three masters: every segment is served by one master, each
    master's share of the scripts' work is reported, and every invariant holds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    out = tmp_path / "demo"
    args = ["--stock", "50", "--shoppers", "300", "--spammers", "10", "--second-wave", "80"]
    run = subprocess.run(
        [FLASHSALE, "demo", *args, "--payment-timeout", "2", "--out", str(out)]
        + ["--redis-cluster", "3", "--segments", "6"],
        env=env | {"COLUMNS": "140"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "all invariants hold" in run.stdout and "FAIL" not in run.stdout
    assert "Redis Cluster of 3 masters; the sale over 6 segment(s)" in run.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True and len(report["checks"]) == 6
    assert (report["redis"], report["segments"]) == ("Redis Cluster of 3 masters", 6)
    assert report["paid"] == report["total"] == 50 and report["final_remaining"] == 0
    assert report["accepted"] == report["orders_persisted"] and report["other_answers"] == 0

    masters = report["masters"]
    assert len(masters) == 3 and len({m["address"] for m in masters}) == 3
    assert sorted(k for m in masters for k in m["segments"]) == list(range(6))
    assert sum(m["evalsha_calls"] for m in masters) >= report["accepted"] / 64
    assert abs(sum(m["share_percent"] for m in masters) - 100) < 0.5
    for m in masters:
        if m["segments"]:  # a master serving a segment ran the sale's scripts
            assert m["evalsha_calls"] > 0 and m["evalsha_usec"] > 0 and m["share_percent"] > 0
        assert f"{m['share_percent']:.1f}%" in run.stdout and m["address"] in run.stdout
    oversell = next(c for c in report["checks"] if c["name"] == "no oversell at any instant")
    assert " 0 samples" not in oversell["detail"]  # samples that were one instant remained


def test_a_sample_over_segments_counts_only_when_no_unit_returned_meanwhile() -> None:
    """Across segments a read is not atomic: a sample during which an order's units went
    back on sale may count a unit twice, so only samples the next one shows no return
    during are checked per instant; on one segment every sample is one instant."""

    def sample(taken: int, returned: int) -> Sample:
        return Sample(0.0, 10 - taken, taken, 0, 0, 0, 0, returned)

    samples = [sample(8, 0), sample(10, 0), sample(11, 0), sample(10, 1), sample(9, 1)]
    one = Timeline("s", 10, started=0.0, samples=samples)
    assert one.instants().samples == samples
    many = Timeline("s", 10, started=0.0, samples=samples, segments=6)
    # The third read straddled a return (the fourth shows it): it is left out; the
    # last has no read after it.
    assert many.instants().samples == [samples[0], samples[1], samples[3]]
    assert many.samples == samples  # the chart still shows every sample


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


def test_demo_with_a_waiting_room_queues_the_crowd_and_checks_the_gate(tmp_path: Path) -> None:
    """The crowd joins, polls and buys once admitted; bots that skip the queue are refused;
    some admissions expire unused; the queue closes sold out; every check passes, the
    room's three included."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    out = tmp_path / "demo"
    args = ["--stock", "30", "--shoppers", "300", "--spammers", "10", "--second-wave", "80"]
    room = ["--waiting-room", "--admit-per-second", "10", "--shopping-seconds", "2"]
    run = subprocess.run(
        [FLASHSALE, "demo", *args, *room, "--payment-timeout", "2", "--out", str(out)],
        env=env | {"COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "all invariants hold" in run.stdout and "FAIL" not in run.stdout
    assert "Waiting room: draw, 10 admitted/s" in run.stdout
    report = json.loads((out / "report.json").read_text())
    checks = {c["name"]: c["passed"] for c in report["checks"]}
    assert len(checks) == 9 and all(checks.values())
    assert {
        "nobody bought without being admitted",
        "admissions within admitPerSecond",
        "admitted within remaining x overbook",
    } <= set(checks)
    assert report["paid"] == report["total"] == 30 and report["final_remaining"] == 0
    assert report["accepted"] == report["orders_persisted"] and report["other_answers"] == 0

    room_figures = report["room"]
    assert room_figures["joined"] == 300 + 80
    assert room_figures["admitted"] >= room_figures["bought"] == report["accepted"]
    assert room_figures["expired"] > 0  # some admitted shoppers never clicked "Buy"
    assert room_figures["polls"] > room_figures["joins"]
    # The bots never joined: each of their clicks was refused; a shopper may be refused
    # too, when their turn ran out before they clicked.
    assert room_figures["not_admitted"] == 10 * 20
    assert report["not_admitted"] == 10 * 20 + room_figures["turn_over"]
    assert room_figures["closed_sold_out"] is True and room_figures["told_sold_out"] > 0
    assert (out / "sale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _room_sample(at: float, admissions: int, admitted: int, remaining: int = 10) -> Sample:
    return Sample(
        at, remaining, 0, 10 - remaining, 0, 0, 0, 0,
        admitted=admitted, admissions=admissions, room_read=(at - 0.01, at),
    )  # fmt: skip


def test_the_waiting_rooms_checks_can_fail() -> None:
    """A purchase sent before its shopper was admitted, admissions faster than the rate
    allows, and more admitted shoppers than remaining units x overbook are caught."""
    log = CrowdLog()
    log.clicks.append(Click(1.0, 1, "u1", "accepted", 202, 0.01, str(uuid.uuid4())))
    log.admitted_at["u1"] = 1.5  # told after it bought
    assert not admitted_first_check(log).passed
    log.admitted_at["u1"] = 0.5
    assert admitted_first_check(log).passed

    steady = [_room_sample(t / 4, t * 2, 1) for t in range(1, 9)]  # 8/s
    assert rate_check(Timeline("s", 10, 0.0, steady), 10).passed
    assert not rate_check(Timeline("s", 10, 0.0, steady), 5).passed

    # 10 remaining x 1.5: 15 may be admitted, 16 may not; nor may admitted grow alone.
    within = [_room_sample(0.25, 0, 0), _room_sample(0.5, 0, 0), _room_sample(0.75, 15, 15)]
    assert overbook_check(Timeline("s", 10, 0.0, within), 1.5).passed
    above = [*within[:2], _room_sample(0.75, 16, 16)]
    assert not overbook_check(Timeline("s", 10, 0.0, above), 1.5).passed
    grew = [*within, _room_sample(1.0, 15, 16)]
    assert not overbook_check(Timeline("s", 10, 0.0, grew), 1.5).passed
