"""The demo's waiting room: the sale's `spec.waitingRoom`, the checks of its gate, and its
figures for the report.

The gate's checks read only what the crowd was answered and what the sampler read
(flashsale/demo/timeline.py), never the room's own bookkeeping:
- nobody bought without being admitted: every 202 went to a shopper whose join or poll
  had answered "admitted" before the purchase was sent;
- admissions never outran `admitPerSecond`: between any two samples, admissions grew by
  at most rate x (time between the start of the first read and the end of the second)
  plus the gate's burst (a twentieth of a second's worth, at least one: queue.lua);
- admitted shoppers who have not bought never exceeded remaining units x `overbook` when
  they were let in. The sampler reads the room, then the units: a sample whose
  admissions grew had its last admission after the previous sample's room read, so after
  the units read of the sample before that; units only come back by returns (counted),
  so remaining then was at most that read plus the returns up to this sample's units
  read, which follows its room read. Admitted shoppers never grow without an admission."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from flashsale.demo.crowd import CrowdLog
from flashsale.demo.plan import DemoPlan
from flashsale.demo.timeline import Sample, Timeline
from flashsale.invariants import CONTRACT_OUTCOMES, Check
from flashsale.sales import SaleStatus

# What the contract lets a purchase answer with once the sale has a waiting room.
PURCHASE_OUTCOMES = CONTRACT_OUTCOMES | {"not_admitted"}
ROOM_STATUSES = frozenset({"waiting", "admitted", "expired", "sold_out"})
JOIN_REFUSALS = frozenset({"not_open", "sold_out"})  # 409s a join may get here


def room_document(plan: DemoPlan, opens: datetime) -> dict[str, Any]:
    """`spec.waitingRoom` of the demo's sale, opening at `opens`."""
    return {
        "opensAt": opens.isoformat(),
        "order": plan.order,
        "admitPerSecond": plan.admit_per_second,
        "shoppingSeconds": plan.shopping_seconds,
        "overbook": plan.overbook,
    }


def burst_of(rate: float) -> float:
    """Admissions the gate may let in at once on top of the rate (queue.lua's bucket)."""
    return max(1.0, rate / 20)


def _read_samples(timeline: Timeline) -> list[Sample]:
    return [s for s in timeline.samples if s.room_read[1] > 0]


def admitted_first_check(log: CrowdLog) -> Check:
    accepted = log.accepted()
    early = [
        c
        for c in accepted
        if (seen := log.admitted_at.get(c.user)) is None or seen > c.at - c.latency
    ]
    refused = log.outcomes()["not_admitted"]
    detail = (
        f"{len(accepted)} purchases accepted, each after its shopper read 'admitted'; "
        f"{refused} clicks refused not_admitted"
        if not early
        else f"{len(early)} of {len(accepted)} accepted purchases were sent before their "
        f"shopper was admitted (e.g. {early[0].user})"
    )
    return Check(
        "nobody bought without being admitted",
        not early,
        detail,
        {"accepted": len(accepted), "not_admitted": refused, "early": len(early)},
    )


def rate_check(timeline: Timeline, rate: float) -> Check:
    samples = _read_samples(timeline)
    burst = burst_of(rate)
    worst, worst_pair = -math.inf, (0.0, 0.0)
    for i, first in enumerate(samples):
        for later in samples[i + 1 :]:
            seconds = later.room_read[1] - first.room_read[0]
            excess = later.admissions - first.admissions - rate * seconds
            if excess > worst:
                worst, worst_pair = excess, (first.at, later.at)
    admissions = samples[-1].admissions if samples else 0
    passed = worst <= burst
    detail = (
        f"{admissions} admissions in {len(samples)} samples; at most {worst:+.2f} above "
        f"{rate:g}/s x time between any two (allowed: +{burst:g}, the gate's burst)"
        if samples
        else "no sample read the room"
    )
    if not passed:
        detail += f"; exceeded between {worst_pair[0]:.2f} s and {worst_pair[1]:.2f} s"
    return Check(
        "admissions within admitPerSecond",
        passed and bool(samples),
        detail,
        {"admissions": admissions, "samples": len(samples)},
    )


def overbook_check(timeline: Timeline, overbook: float) -> Check:
    samples = [s for s in timeline.instants().samples if s.room_read[1] > 0]
    total = timeline.total
    breaches: list[str] = []
    peak, peak_bound = 0, 0
    for i, sample in enumerate(samples):
        before = samples[i - 1] if i else None
        if before and sample.admissions == before.admissions:
            if sample.admitted > before.admitted:
                breaches.append(f"{sample.at:.2f} s: admitted grew with no admission")
            continue
        back = samples[i - 2] if i >= 2 else None
        could_sell = back.remaining + sample.returned - back.returned if back is not None else total
        bound = math.floor(could_sell * overbook)
        if sample.admitted > bound:
            breaches.append(f"{sample.at:.2f} s: {sample.admitted} admitted, bound {bound}")
        if sample.admitted >= peak:
            peak, peak_bound = sample.admitted, bound
    detail = (
        f"most admitted and not yet bought: {peak} (bound then {peak_bound}, remaining "
        f"x {overbook:g}) over {len(samples)} samples"
        if not breaches
        else "; ".join(breaches[:3])
    )
    return Check(
        "admitted within remaining x overbook",
        not breaches and bool(samples),
        detail,
        {"peak_admitted": peak, "samples": len(samples)},
    )


def answers_check(log: CrowdLog) -> Check:
    """The contract's answers, waiting room included: a purchase may be refused
    `not_admitted`; a join is 202 or refused `sold_out` (or `not_open`), a poll is 200."""
    strange = sorted(set(log.outcomes()) - PURCHASE_OUTCOMES)
    for call in log.room_calls:
        fine = (call.status in (200, 202) and call.outcome in ROOM_STATUSES) or (
            call.op == "join" and call.status == 409 and call.outcome in JOIN_REFUSALS
        )
        if not fine:
            strange.append(f"{call.op}:{call.status}:{call.outcome}")
    strange = sorted(set(strange))
    return Check(
        "only answers the contract allows",
        not strange,
        "purchases 202, 409 or 429; joins 202 or 409; polls 200"
        if not strange
        else f"unexpected: {strange}",
    )


def room_checks(log: CrowdLog, timeline: Timeline, plan: DemoPlan) -> list[Check]:
    return [
        admitted_first_check(log),
        rate_check(timeline, plan.admit_per_second),
        overbook_check(timeline, plan.overbook),
    ]


@dataclass(frozen=True)
class RoomReport:
    order: str
    admit_per_second: float
    shopping_seconds: int
    overbook: float
    joined: int  # shoppers who got a place
    turned_away: int  # joins refused sold_out: the queue had closed
    admitted: int  # shoppers let in (the room's count)
    expired: int  # admissions that ran out unused (the room's count)
    bought: int  # admitted shoppers whose purchase was accepted
    told_sold_out: int  # waiting shoppers who read sold_out when the queue closed
    not_admitted: int  # clicks refused of shoppers who never joined (the bots)
    turn_over: int  # clicks refused not_admitted of shoppers whose admission had run out
    joins: int
    polls: int
    peak_waiting: int
    peak_admitted: int
    closed_sold_out: bool  # nothing left and nothing held: the queue closed


def room_report(
    log: CrowdLog, timeline: Timeline, plan: DemoPlan, status: SaleStatus
) -> RoomReport:
    calls = log.room_calls
    ops = Counter(c.op for c in calls)
    joined = {c.user for c in calls if c.op == "join" and c.status == 202}
    refused = [c for c in log.clicks if c.outcome == "not_admitted"]
    last = max(timeline.samples, key=lambda s: s.room_read[1], default=None)
    figures = status.stock
    return RoomReport(
        order=plan.order,
        admit_per_second=plan.admit_per_second,
        shopping_seconds=plan.shopping_seconds,
        overbook=plan.overbook,
        joined=len(joined),
        turned_away=len({c.user for c in calls if c.status == 409 and c.outcome == "sold_out"}),
        admitted=last.admissions if last else 0,
        expired=last.expiries if last else 0,
        bought=len({c.user for c in log.accepted()}),
        told_sold_out=len({c.user for c in calls if c.status == 200 and c.outcome == "sold_out"}),
        not_admitted=sum(1 for c in refused if c.user not in joined),
        turn_over=sum(1 for c in refused if c.user in joined),
        joins=ops["join"],
        polls=ops["poll"],
        peak_waiting=max((s.waiting for s in timeline.samples), default=0),
        peak_admitted=max((s.admitted for s in timeline.samples), default=0),
        closed_sold_out=figures.remaining == 0
        and figures.pending_payment == 0
        and figures.reserved == 0,
    )


def print_room(room: RoomReport, console: Console) -> None:
    title = (
        f"Waiting room: {room.order}, {room.admit_per_second:g} admitted/s, "
        f"{room.shopping_seconds} s to buy, overbook {room.overbook:g}"
    )
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("joined the queue", f"{room.joined:,}"),
        ("turned away at the door (sold out)", f"{room.turned_away:,}"),
        ("admitted", f"{room.admitted:,}"),
        ("admitted and bought", f"{room.bought:,}"),
        ("admissions expired unused", f"{room.expired:,}"),
        ("told sold out while waiting", f"{room.told_sold_out:,}"),
        ("clicks refused not_admitted: bots", f"{room.not_admitted:,}"),
        ("... of shoppers whose turn ran out", f"{room.turn_over:,}"),
        ("joins / polls", f"{room.joins:,} / {room.polls:,}"),
        ("most waiting / most admitted at once", f"{room.peak_waiting:,} / {room.peak_admitted:,}"),
        ("queue closed sold out", "yes" if room.closed_sold_out else "no"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
