"""Per-sale worker pace: the operator tells running Celery workers how fast to persist
orders (`spec.worker.ordersPerSecond` shared by the worker replicas), by broadcasting a
`rate_limit` control message over the broker. Workers started later begin at their own
FLASHSALE_ORDERS_PER_SECOND and get the sale's pace with the next broadcast."""

from __future__ import annotations

import logging
import time

from celery import Celery

from flashsale.settings import Settings
from flashsale.worker.app import make_celery
from flashsale.worker.message import PERSIST_TASK

log = logging.getLogger(__name__)

REBROADCAST_SECONDS = 60.0  # reach workers that started since the last change


def rate_text(per_second: float) -> str:
    return f"{per_second:.6g}/s"


class WorkerPace:
    def __init__(self, common: Settings) -> None:
        self.default = common.orders_per_second
        self._app: Celery = make_celery(common)
        self._last: str | None = None
        self._sent_at = 0.0

    def apply(self, per_worker: float | None) -> str | None:
        """Broadcast the pace when it changed (or now and then); None: back to the default.
        Returns the rate sent, if any. Blocking: call it from a thread."""
        wanted = rate_text(per_worker if per_worker is not None else self.default)
        now = time.monotonic()
        fresh = now - self._sent_at < REBROADCAST_SECONDS
        if wanted == self._last and (fresh or per_worker is None):
            return None
        self._app.control.rate_limit(PERSIST_TASK, wanted, reply=False)
        if wanted != self._last:
            log.info("worker pace set to %s per worker", wanted)
        self._last, self._sent_at = wanted, now
        return wanted
