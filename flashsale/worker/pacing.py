"""The workers' steady pace: orders per second, kept inside the task.

Each worker persists at most its pace of orders per second, whatever the size of the
messages it takes. The pace is FLASHSALE_ORDERS_PER_SECOND unless the operator set one
for the active sales (`WORKER_PACE_KEY` on the broker's Redis, read at most every few
seconds). Pool processes share it: a prefork worker of 4 processes gives each a quarter.

Celery's own `rate_limit` counts messages, not orders, and after a broker reconnect it
could hold a worker at one task per second; a token bucket per process has neither
problem."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

WORKER_PACE_KEY = "flashsale:worker-pace"  # orders/s per worker, set by the operator
PACE_TTL_SECONDS = 300  # a pace the operator stopped refreshing falls back to the default
REFRESH_SECONDS = 2.0
BURST_SECONDS = 1.0  # an idle process may start with this much of its pace at once


class TokenBucket:
    """Sleeps callers so that, on average, at most `rate()` units pass per second.

    A caller takes all its units at once and sleeps off the debt, so a large batch waits
    as long as its units take at the pace. Thread-safe: threads of one process share it."""

    def __init__(
        self,
        rate: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._last = 0.0

    def take(self, units: int) -> float:
        """Spend `units`; returns how long this call slept."""
        rate = self._rate()
        with self._lock:
            now = self._clock()
            burst = rate * BURST_SECONDS
            if self._tokens is None:
                self._tokens = burst
            else:
                self._tokens = min(burst, self._tokens + (now - self._last) * rate)
            self._last = now
            self._tokens -= units
            wait = -self._tokens / rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class WorkerPace:
    """This process's share of its worker's pace, refreshed from Redis now and then."""

    def __init__(
        self,
        client: redis.Redis,
        default: float,
        share: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._default = default
        self.share = share
        self._clock = clock
        self._per_worker = default
        self._read_at: float | None = None

    def per_second(self) -> float:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= REFRESH_SECONDS:
            self._read_at = now
            self._per_worker = self._read()
        return self._per_worker * self.share

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
