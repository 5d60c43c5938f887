"""The operator's side of the worker pace: it tells the Celery workers how fast to persist
orders (`spec.worker.ordersPerSecond` of the sales in their window, shared by the worker
replicas) by writing it to `WORKER_PACE_KEY` on the broker's Redis. Every worker re-reads
the key every few seconds, workers started later included, and paces itself with a token
bucket (`flashsale.worker.pacing`, the workers' side).
With no sale the key is deleted and each worker keeps its own FLASHSALE_ORDERS_PER_SECOND;
the key also expires if the operator stops refreshing it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from flashsale.handoff import PACE_TTL_SECONDS, WORKER_PACE_KEY

log = logging.getLogger(__name__)

REWRITE_SECONDS = 60.0  # keeps the key's TTL fresh, well before PACE_TTL_SECONDS
_UNKNOWN = object()  # at start: a key left by an earlier operator may be there


def pace_text(per_second: float) -> str:
    return f"{per_second:.6g}"


class PaceSetter:
    """Writes the per-worker pace to the broker's Redis when it changes, and now and then
    to keep its TTL fresh; deletes it (once) when no sale sets one."""

    def __init__(self, broker: redis.Redis, clock: Callable[[], float] = time.monotonic) -> None:
        self._broker = broker
        self._clock = clock
        self._last: object = _UNKNOWN  # the value written, None once deleted
        self._written_at = 0.0

    def apply(self, per_worker: float | None) -> bool:
        """Set the pace (None: each worker's own default). Returns whether Redis was
        written. Blocking: call it from a thread."""
        now = self._clock()
        if per_worker is None:
            if self._last is None:
                return False
            if self._broker.delete(WORKER_PACE_KEY):
                log.info("worker pace cleared: workers back to FLASHSALE_ORDERS_PER_SECOND")
            self._last = None
            return True
        wanted = pace_text(per_worker)
        if wanted == self._last and now - self._written_at < REWRITE_SECONDS:
            return False
        self._broker.set(WORKER_PACE_KEY, wanted, ex=PACE_TTL_SECONDS)
        if wanted != self._last:
            log.info("worker pace set to %s orders/s per worker", wanted)
        self._last, self._written_at = wanted, now
        return True
