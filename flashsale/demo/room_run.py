"""The crowd of a sale with a waiting room: everybody queues, only the bots do not.

The room opens as the demo starts and the sale a few seconds later: the first wave
arrives over `arrival_seconds`, so most join before the start (placed by the draw) and
the rest after it (behind them, in arrival order). Each shopper joins, polls, and buys
once admitted (flashsale/demo/crowd.py, `queued_shopper`); some admitted shoppers never
click "Buy", so their admissions expire and pass to the next. The spammers skip the
queue and hammer "Buy" at the start: every click is refused `not_admitted`.

Who pays: as without a room, a share of the buyers walks away from the first orders
without paying; once the first unpaid orders are due (units start coming back), every
buyer pays, as the second wave does without a room. The second wave arrives then, and
queues behind everyone: the queue closes before their turn comes."""

from __future__ import annotations

import random
from collections.abc import Awaitable

from rich.progress import Progress

from flashsale.demo.crowd import Crowd
from flashsale.demo.plan import DemoPlan
from flashsale.demo.steps import persisted, until, with_progress
from flashsale.demo.timeline import Timeline


async def room_waves(
    plan: DemoPlan,
    crowd: Crowd,
    timeline: Timeline,
    bar: Progress,
    rng: random.Random,
    marks: dict[str, float],
    starts: float,
) -> float:
    """Run the crowd through the room; `starts` is the sale's start in the timeline's
    seconds. Returns the seconds until the last shopper was done."""
    log = crowd.log
    marks["waiting room opens"] = 0.0
    marks["sale starts" + (": the draw" if plan.order == "draw" else "")] = starts
    second_wave_at = starts + plan.payment_timeout_seconds
    marks["second wave"] = second_wave_at

    def pays() -> bool:
        first = log.first_accepted()
        if first is not None and log.now() >= first + plan.payment_timeout_seconds:
            return True  # units are coming back: these buyers came for them
        return rng.random() >= plan.never_pay

    def shopper(wave: int, user: str, delay: float) -> Awaitable[None]:
        walks_away = rng.random() < plan.walk_away
        return crowd.queued_shopper(wave, user, delay, walks_away, pays, rng, plan.poll_cap_seconds)

    jobs: list[Awaitable[None]] = [
        shopper(1, f"shopper-{i}", rng.uniform(0, plan.arrival_seconds))
        for i in range(plan.shoppers)
    ]
    jobs += [
        shopper(2, f"late-{i}", second_wave_at + rng.uniform(0, 1.0))
        for i in range(plan.second_wave)
    ]
    jobs += [
        crowd.spammer(f"bot-{i}", plan.spam_clicks, starts + rng.uniform(0, 0.5))
        for i in range(plan.spammers)
    ]
    began = log.now()
    people = plan.shoppers + plan.second_wave
    await with_progress(bar, "shoppers through the waiting room", people, jobs, lambda: log.done)
    seconds = log.now() - began
    closed = [c.at for c in log.room_calls if c.outcome == "sold_out"]
    if closed:
        marks["queue closed: sold out"] = min(closed)

    accepted = len(log.accepted())
    await persisted(bar, "workers persist the orders", timeline, accepted)
    unpaid = accepted - len(log.paid_orders)
    settle = bar.add_task("unpaid orders expire, units return", total=unpaid)
    await until(
        timeline,
        lambda s: s.orders == s.paid + s.expired and s.returned >= s.expired,
        lambda s: bar.update(settle, completed=min(s.expired, unpaid)),
    )
    return seconds
