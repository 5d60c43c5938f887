"""The demo's figures and verdicts, for the terminal and as JSON."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from flashsale.demo.crowd import CrowdLog
from flashsale.demo.room import RoomReport, print_room
from flashsale.invariants import Check
from flashsale.local.masters import MasterWork, share
from flashsale.sales import SaleStatus
from flashsale.stock import split


@dataclass(frozen=True)
class MasterShare:
    """One Redis master's part of the sale: the stock scripts it ran and their CPU time."""

    address: str
    segments: list[int]  # the sale's segments whose slots it serves
    evalsha_calls: int
    evalsha_usec: int
    share_percent: float  # of the EVALSHA CPU time of every master


def master_shares(work: list[MasterWork], placement: dict[str, list[str]]) -> list[MasterShare]:
    """Each master's EVALSHA calls and CPU time during the sale, and its share of the CPU."""
    whole = sum(w.evalsha_usec for w in work)
    return [
        MasterShare(
            w.address,
            sorted(split(name)[1] for name in placement.get(w.address, [])),
            w.evalsha_calls,
            w.evalsha_usec,
            round(share(w.evalsha_usec, whole), 1),
        )
        for w in work
    ]


@dataclass(frozen=True)
class DemoReport:
    sale: str
    shoppers: int
    spammers: int
    second_wave: int
    requests: int
    accepted: int
    sold_out: int
    limit_reached: int
    rate_limited: int
    other_answers: int
    orders_persisted: int
    paid: int
    expired: int
    rejected: int
    units_returned: int
    final_remaining: int
    total: int
    requests_per_second: float
    accepted_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    seconds: float
    checks: list[Check] = field(default_factory=list)
    chart: str = ""
    redis: str = "one Redis"
    segments: int = 1
    masters: list[MasterShare] = field(default_factory=list)
    room: RoomReport | None = None  # the waiting room's figures, when the sale had one
    not_admitted: int = 0  # purchases refused: the waiting room had not let them in

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


def _percentile(values: list[float], share: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def build_report(
    log: CrowdLog,
    status: SaleStatus,
    order_counts: dict[str, int],
    units_returned: int,
    first_wave_seconds: float,
    counts: tuple[int, int, int],
    checks: list[Check],
    seconds: float,
) -> DemoReport:
    outcomes = log.outcomes()
    first_wave = [c for c in log.clicks if c.wave == 1]
    accepted_first = [c for c in first_wave if c.outcome == "accepted"]
    selling = max((c.at for c in accepted_first), default=0.0) - min(
        (c.at for c in first_wave), default=0.0
    )
    latencies = [c.latency * 1000 for c in log.clicks]
    known = ("accepted", "sold_out", "limit_reached", "rate_limited", "not_admitted")
    shoppers, spammers, second_wave = counts
    return DemoReport(
        sale=status.name,
        shoppers=shoppers,
        spammers=spammers,
        second_wave=second_wave,
        requests=len(log.clicks),
        accepted=outcomes["accepted"],
        sold_out=outcomes["sold_out"],
        limit_reached=outcomes["limit_reached"],
        rate_limited=outcomes["rate_limited"],
        other_answers=sum(n for k, n in outcomes.items() if k not in known),
        orders_persisted=sum(order_counts.values()),
        paid=order_counts.get("paid", 0),
        expired=order_counts.get("expired", 0),
        rejected=order_counts.get("rejected", 0),
        units_returned=units_returned,
        final_remaining=status.stock.remaining,
        total=status.stock.total,
        requests_per_second=len(first_wave) / first_wave_seconds if first_wave_seconds else 0.0,
        accepted_per_second=len(accepted_first) / selling if selling > 0 else 0.0,
        latency_p50_ms=_percentile(latencies, 0.50),
        latency_p99_ms=_percentile(latencies, 0.99),
        seconds=seconds,
        checks=checks,
        not_admitted=outcomes["not_admitted"],
    )


def print_report(report: DemoReport, console: Console) -> None:
    figures = Table(title=f"Flash sale '{report.sale}': {report.total} units", show_header=False)
    figures.add_column(style="bold")
    figures.add_column(justify="right")
    rows: list[tuple[str, str]] = [
        (
            "shoppers",
            f"{report.shoppers} + {report.spammers} spammers, then {report.second_wave}",
        ),
        ("requests", f"{report.requests:,}"),
        ("accepted (202)", f"{report.accepted:,}"),
        ("sold out (409)", f"{report.sold_out:,}"),
        ("limit reached (409)", f"{report.limit_reached:,}"),
        ("rate limited (429)", f"{report.rate_limited:,}"),
        *([("not admitted (409)", f"{report.not_admitted:,}")] if report.room else []),
        ("other answers", f"{report.other_answers:,}"),
        ("orders persisted", f"{report.orders_persisted:,}"),
        ("paid", f"{report.paid:,}"),
        ("expired (unpaid)", f"{report.expired:,}"),
        ("rejected by the SQL guard", f"{report.rejected:,}"),
        ("units returned to stock", f"{report.units_returned:,}"),
        ("final stock remaining", f"{report.final_remaining:,}"),
        ("first wave requests/s", f"{report.requests_per_second:,.0f}"),
        ("accepted reservations/s", f"{report.accepted_per_second:,.0f}"),
        ("latency p50 / p99", f"{report.latency_p50_ms:.1f} ms / {report.latency_p99_ms:.1f} ms"),
        ("duration", f"{report.seconds:.1f} s"),
    ]
    for label, value in rows:
        figures.add_row(label, value)
    console.print(figures)
    if report.room:
        print_room(report.room, console)
    if report.masters:
        print_masters(report, console)
    verdicts = Table(title="Invariants")
    verdicts.add_column("check")
    verdicts.add_column("result")
    verdicts.add_column("evidence")
    for check in report.checks:
        verdict = "[bold green]PASS[/]" if check.passed else "[bold red]FAIL[/]"
        verdicts.add_row(check.name, verdict, check.detail)
    console.print(verdicts)


def print_masters(report: DemoReport, console: Console) -> None:
    """Each master's share of the stock scripts' work during the sale."""
    title = f"Redis: {report.redis}; the sale over {report.segments} segment(s)"
    caption = (
        "share: the master's part of the CPU time every master spent running the stock "
        "scripts (EVALSHA: reserve, lend, ack, restore...) during the sale"
    )
    table = Table(title=title, caption=caption)
    table.add_column("master")
    table.add_column("segments served")
    table.add_column("EVALSHA calls", justify="right")
    table.add_column("EVALSHA CPU µs", justify="right")
    table.add_column("share", justify="right")
    for m in report.masters:
        served = ", ".join(map(str, m.segments)) or "none"
        table.add_row(
            m.address,
            served,
            f"{m.evalsha_calls:,}",
            f"{m.evalsha_usec:,}",
            f"{m.share_percent:.1f}%",
        )
    console.print(table)
