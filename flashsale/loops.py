"""Run a step again and again, through outages: `reap --every` and `sweep --every`.

A step that fails because Redis, the broker or PostgreSQL is unreachable logs one WARNING
line with the cause and is tried again after a pause that doubles up to a cap; anything
else is logged with its traceback and the loop carries on too. Only a signal stops it.
Every step is recorded in the stock Redis (`flashsale.runs`).

The clients a loop uses must give up on their own: `flashsale.clients` gives them socket
and connect timeouts (a frozen Redis otherwise blocks a call for ever) and health checks
on idle connections; the SQL engine has its connect timeout and pre-ping."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import redis
from sqlalchemy.exc import SQLAlchemyError

from flashsale.clients import StockRedis
from flashsale.runs import record_run

log = logging.getLogger(__name__)

# What an outage of Redis, the broker or PostgreSQL raises: expected, retried quietly.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, SQLAlchemyError, OSError)


def describe(exc: BaseException) -> str:
    """One line: the error's type and the first line of its message."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass(frozen=True)
class Backoff:
    """Pause after `failures` failures in a row: `every` doubled each time, at most `cap`
    (never less than `every`)."""

    every: float
    cap: float = 10.0

    def pause(self, failures: int) -> float:
        if failures <= 0:
            return self.every
        base = max(self.every, 0.5)
        return max(self.every, min(self.cap, base * 2.0 ** (failures - 1)))


def run_step(
    component: str, step: Callable[[], None], recorder: StockRedis | None
) -> BaseException | None:
    """Run `step` once, record the run, and return what it raised (None: it worked).
    Outages are logged as one line, anything else with its traceback."""
    error: BaseException | None = None
    try:
        step()
    except OUTAGE_ERRORS as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - a loop outlives one bad step
        log.exception("%s: step failed", component)
        error = exc
    if recorder is not None:
        try:
            cause = describe(error) if error is not None else None
            record_run(recorder, component, ok=error is None, error=cause)
        except Exception:  # noqa: BLE001 - bookkeeping never stops the work
            log.exception("%s: could not record the run", component)
    return error


def run_every(
    component: str,
    every: float,
    step: Callable[[], None],
    recorder: StockRedis | None = None,
    stop: threading.Event | None = None,
    backoff: Backoff | None = None,
) -> None:
    """Run `step` every `every` seconds until `stop` is set (never, without one)."""
    stop = stop or threading.Event()
    backoff = backoff or Backoff(every)
    failures = 0
    while not stop.is_set():
        error = run_step(component, step, recorder)
        if error is None:
            if failures:
                log.warning("%s: working again after %d failed runs", component, failures)
            failures = 0
        else:
            failures += 1
            if isinstance(error, OUTAGE_ERRORS):
                log.warning(
                    "%s: %s; trying again in %.1fs (failure %d)",
                    component,
                    describe(error),
                    backoff.pause(failures),
                    failures,
                )
        stop.wait(backoff.pause(failures))
