"""Waiting for the sale to reach a state, with a progress bar: the steps of a demo."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from rich.progress import Progress

from flashsale.demo.timeline import Sample, Timeline

SETTLE_TIMEOUT = 60.0


async def until(
    timeline: Timeline, done: Callable[[Sample], bool], progress: Callable[[Sample], None]
) -> bool:
    """Wait for the sampler to show `done`; False after SETTLE_TIMEOUT."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        last = timeline.last
        if last:
            progress(last)
            if done(last):
                return True
        await asyncio.sleep(0.1)
    return False


async def persisted(bar: Progress, label: str, timeline: Timeline, orders: int) -> None:
    """Wait until `orders` order rows exist and nothing is still on its way to SQL."""
    task = bar.add_task(label, total=orders)
    await until(
        timeline,
        lambda s: s.reserved == 0 and s.orders >= orders,
        lambda s: bar.update(task, completed=s.orders),
    )


async def with_progress(
    bar: Progress,
    label: str,
    total: int,
    jobs: Sequence[Awaitable[None]],
    count: Callable[[], int],
) -> None:
    task = bar.add_task(label, total=total)

    async def watch() -> None:
        while True:
            bar.update(task, completed=count())
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*jobs)
    watcher.cancel()
    bar.update(task, completed=count())
