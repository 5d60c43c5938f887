"""Waiting for a condition: the one polling helper of the tests.

`wait_for` blocks; `eventually` is the same polling for tests whose servers answer only
while the event loop runs (the operator tests' Kubernetes emulator), so it awaits between
tries instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def _tries(check: Callable[[], T], timeout: float) -> Iterator[T]:
    """`check()`'s values, one per try, until the deadline; then fail with the last one."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        yield value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")


def wait_for(check: Callable[[], T], timeout: float = 30.0, every: float = 0.1) -> T:
    """Call `check` every `every` seconds until it returns something truthy; return it."""
    for value in _tries(check, timeout):
        if value:
            return value
        time.sleep(every)
    raise AssertionError("unreachable")


async def eventually(check: Callable[[], T], timeout: float = 15.0, every: float = 0.1) -> T:
    """`wait_for`, awaited: the event loop runs between tries."""
    for value in _tries(check, timeout):
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError("unreachable")
