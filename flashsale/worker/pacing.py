"""The workers' steady pace: orders per second, kept inside the task.

Each worker persists at most its pace of orders per second, whatever the size of the
messages it takes. The pace is FLASHSALE_ORDERS_PER_SECOND unless the operator set one
for the active sales (`WORKER_PACE_KEY` on the broker's Redis, read at most every few
seconds). The processes of a prefork pool share one bucket in shared memory, so the pace
is the worker's, however its messages fall on its processes.

Celery's own `rate_limit` counts messages, not orders, and after a broker reconnect it
could hold a worker at one task per second; a token bucket in the task has neither
problem."""

from __future__ import annotations

import logging
import math
import multiprocessing
import threading
import time
from collections.abc import Callable, MutableSequence
from contextlib import AbstractContextManager
from typing import Any

import redis

from flashsale.handoff import WORKER_PACE_KEY

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
BURST_SECONDS = 1.0  # an idle process may start with this much of its pace at once


class BucketState:
    """The bucket's figures (tokens, time of the last take) and the lock over them. Made
    with `shared=True` before a pool forks, its children share one bucket."""

    def __init__(self, shared: bool = False) -> None:
        self.values: MutableSequence[float]
        self.lock: AbstractContextManager[Any]
        if shared:
            context = multiprocessing.get_context("fork")
            self.values = context.RawArray("d", [math.nan, 0.0])
            self.lock = context.Lock()
        else:
            self.values = [math.nan, 0.0]
            self.lock = threading.Lock()


class TokenBucket:
    """Sleeps callers so that, on average, at most `rate()` units pass per second.

    A caller takes all its units at once and sleeps off the debt, so a large batch waits
    as long as its units take at the pace. Threads of one process share it, and so do
    the processes of a pool given one shared `BucketState`."""

    def __init__(
        self,
        rate: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        state: BucketState | None = None,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._state = state or BucketState()

    def take(self, units: int) -> float:
        """Spend `units`; returns how long this call slept."""
        rate = self._rate()
        values = self._state.values
        with self._state.lock:
            now = self._clock()
            burst = rate * BURST_SECONDS
            tokens, last = values[0], values[1]
            tokens = burst if math.isnan(tokens) else min(burst, tokens + (now - last) * rate)
            tokens -= units
            values[0], values[1] = tokens, now
        wait = -tokens / rate if tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class WorkerPace:
    """The worker's pace, refreshed from Redis now and then."""

    def __init__(
        self,
        client: redis.Redis,
        default: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._default = default
        self._clock = clock
        self._per_worker = default
        self._read_at: float | None = None

    def per_second(self) -> float:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= REFRESH_SECONDS:
            self._read_at = now
            self._per_worker = self._read()
        return self._per_worker

    def _read(self) -> float:
        try:
            raw = self._client.get(WORKER_PACE_KEY)
        except redis.RedisError as exc:  # the pace must not stop the work
            log.warning("could not read the worker pace, keeping %s/s: %s", self._per_worker, exc)
            return self._per_worker
        if raw is None:
            return self._default
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if value > 0:
            return value
        log.warning("ignoring worker pace %r in %s", raw, WORKER_PACE_KEY)
        return self._default
