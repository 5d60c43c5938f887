"""How the reaper and sweeper loops fare, kept in the stock Redis for SREs.

After every step a loop writes `flashsale:runs:<component>`, a hash with `runs` and
`failures` (counters), `last_run_ms` and `last_ok_ms` (Unix milliseconds) and
`last_error` (short text); the component's name goes into the set `flashsale:runs`, so
`read_runs` finds every component without scanning the keyspace. A step that failed while
Redis itself was unreachable cannot be written then: it is counted in the process and
added on the next write that succeeds, so an outage shows up in `failures` afterwards."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from flashsale.clients import StockRedis

RUNS_KEY = "flashsale:runs"
ERROR_CHARS = 200


def runs_key(component: str) -> str:
    return f"{RUNS_KEY}:{component}"


@dataclass(frozen=True, slots=True)
class RunFigures:
    runs: int
    failures: int
    last_run_ms: int  # 0: never
    last_ok_ms: int  # 0: never succeeded
    last_error: str = ""


@dataclass
class _Unsaved:
    runs: int = 0
    failures: int = 0


# Per component: steps of this process not yet written (Redis was unreachable).
_unsaved: dict[str, _Unsaved] = {}


def record_run(client: StockRedis, component: str, ok: bool, error: str | None = None) -> bool:
    """Count one step of `component`; False when Redis could not be written (the step is
    then kept here and added on the next successful write)."""
    pending = _unsaved.setdefault(component, _Unsaved())
    runs, failures = pending.runs + 1, pending.failures + (0 if ok else 1)
    now_ms = int(time.time() * 1000)
    key = runs_key(component)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(key, "runs", runs)
        if failures:
            pipe.hincrby(key, "failures", failures)
        pipe.hset(key, "last_run_ms", now_ms)
        if ok:
            pipe.hset(key, "last_ok_ms", now_ms)
        if error:
            pipe.hset(key, "last_error", " ".join(error.split())[:ERROR_CHARS])
        pipe.sadd(RUNS_KEY, component)
        pipe.execute()
    except redis.RedisError:
        pending.runs, pending.failures = runs, failures
        return False
    pending.runs = pending.failures = 0
    return True


def _int(raw: dict[bytes, bytes], field: str) -> int:
    return int(raw.get(field.encode(), b"0"))


def read_runs(client: StockRedis) -> dict[str, RunFigures]:
    """Every component's figures, by component name."""
    components = sorted(m.decode() for m in client.smembers(RUNS_KEY))  # type: ignore[union-attr]
    figures: dict[str, RunFigures] = {}
    for component in components:
        raw: dict[bytes, bytes] = client.hgetall(runs_key(component))  # type: ignore[assignment]
        if not raw:
            continue
        figures[component] = RunFigures(
            runs=_int(raw, "runs"),
            failures=_int(raw, "failures"),
            last_run_ms=_int(raw, "last_run_ms"),
            last_ok_ms=_int(raw, "last_ok_ms"),
            last_error=raw.get(b"last_error", b"").decode(errors="replace"),
        )
    return figures
