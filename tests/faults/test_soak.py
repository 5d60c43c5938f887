"""A soak: minutes of mixed traffic (buy, look, pay, spam, sold-out clicks) with the
reaper and sweeper running: only the contract's answers, the API's memory stays within a
bound, and every invariant holds at the end.

FLASHSALE_SOAK_SECONDS sets the length (`make test` runs a short one, `make soak` the
full five minutes)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter

import pytest

from tests.conftest import descendants
from tests.faults.conftest import Stack

SECONDS = float(os.environ.get("FLASHSALE_SOAK_SECONDS", "40"))
MEMORY_BOUND_MB = 40.0  # growth of the API's resident memory after warm-up
USERS = 3000
LOOK_ANSWERS = {(200, s) for s in ("reserved", "pending_payment", "paid", "expired")}


def resident_mb(pid: int) -> float:
    """Resident memory of a process and everything below it."""
    total = 0
    for each in {pid} | descendants(pid):
        try:
            for line in open(f"/proc/{each}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


@pytest.mark.timeout(SECONDS + 300)
async def test_soak(stack: Stack) -> None:
    base = stack.start_api()
    stack.start_worker()
    stack.start("reaper", ["reap", "--every", "1"])
    stack.start("sweeper", ["sweep", "--every", "2"])
    sale = stack.sale(
        stock=1_000_000,
        perUserLimit=3,
        paymentTimeoutSeconds=2,
        rateLimit={"requestsPerSecond": 20, "burst": 20},
    )
    gone = stack.sale(stock=0)
    api_pid = stack.processes["api"].proc.pid  # type: ignore[union-attr]
    rng = random.Random(5)
    others: Counter[str] = Counter()
    memory: list[float] = []
    deadline = time.monotonic() + SECONDS

    async with stack.watch(sale, 1_000_000) as timeline, stack.crowd(base, sale) as crowd:
        spam = stack.crowd(base, gone)
        await spam.__aenter__()

        async def shopper(n: int) -> None:
            while time.monotonic() < deadline:
                user = f"u{rng.randrange(USERS)}"
                click = await crowd.click(1, user, f"{user}-{rng.randrange(10**9)}")
                if click.order_id:
                    await asyncio.sleep(rng.uniform(0, 0.5))
                    looked = await crowd.look(user, click.order_id)
                    others["look ok" if looked in LOOK_ANSWERS else f"look {looked}"] += 1
                    if rng.random() < 0.5:
                        await crowd.pay(user, click.order_id)

        async def spammer() -> None:
            while time.monotonic() < deadline:
                await crowd.click(1, "spammer", f"s-{rng.randrange(10**9)}")
                late = await spam.click(1, f"late-{rng.randrange(USERS)}", "k")
                others[f"sold-out sale {late.outcome}"] += 1

        async def meter() -> None:
            while time.monotonic() < deadline:
                memory.append(resident_mb(api_pid))
                await asyncio.sleep(2)

        await asyncio.gather(*(shopper(n) for n in range(24)), spammer(), spammer(), meter())
        await spam.__aexit__(None, None, None)
        accepted = len(crowd.log.accepted())
        await asyncio.to_thread(stack.settle, sale, accepted)
        # Let the reaper finish with the last unpaid orders before checking.
        await asyncio.sleep(3.5)

    warm = memory[len(memory) // 5 :] or memory
    growth = max(warm) - warm[0]
    assert others["look ok"] > 0 and set(others) <= {"look ok", "sold-out sale sold_out"}, others
    assert crowd.log.payments.keys() <= {"paid", "expired"}, crowd.log.payments
    assert crowd.log.outcomes()["rate_limited"] > 0
    assert growth <= MEMORY_BOUND_MB, memory
    stack.record(
        f"soak, {SECONDS:.0f} s of mixed traffic",
        crowd,
        timeline,
        per_user_limit=3,
        payments=dict(crowd.log.payments),
        looks_and_sold_out_clicks=dict(others),
        api_memory_mb={"first": round(memory[0]), "peak": round(max(memory))},
        memory_growth_after_warmup_mb=round(growth, 1),
    )
