"""The loop runner and its run records, against the session's real Redis and PostgreSQL;
and the sale commands' answer when there is nothing to talk to."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
import uuid

import pytest
import redis

from flashsale.embedded import free_port
from flashsale.loops import Backoff, run_every
from flashsale.runs import RunFigures, read_runs, record_run, runs_key
from tests.conftest import FLASHSALE, Platform


def test_failures_while_redis_is_unreachable_are_added_later(platform: Platform) -> None:
    component = f"c-{uuid.uuid4().hex[:8]}"
    gone = redis.Redis(port=free_port(), socket_connect_timeout=1)
    assert record_run(gone, component, ok=False, error="ConnectionError: refused") is False
    assert record_run(gone, component, ok=False, error="ConnectionError: refused") is False
    assert record_run(platform.redis, component, ok=True) is True
    figures = read_runs(platform.redis)[component]
    assert (figures.runs, figures.failures) == (3, 2)
    assert figures.last_ok_ms == figures.last_run_ms > 0
    assert figures.last_error == ""  # no failure was written with text yet
    assert record_run(platform.redis, component, ok=False, error="Timeout\n  long")
    after = read_runs(platform.redis)[component]
    assert (after.runs, after.failures, after.last_error) == (4, 3, "Timeout long")
    assert after.last_ok_ms == figures.last_ok_ms
    platform.redis.delete(runs_key(component))


def test_loop_carries_on_after_outages_and_unexpected_errors(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    component = f"c-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    failures = [redis.ConnectionError("Connection refused"), ValueError("a bad row")]
    done: list[int] = []

    def step() -> None:
        if failures:
            raise failures.pop(0)
        done.append(1)
        if len(done) == 2:
            stop.set()

    with caplog.at_level(logging.WARNING, logger="flashsale.loops"):
        loop = threading.Thread(
            target=run_every,
            args=(component, 0.05, step, platform.redis, stop, Backoff(0.05, cap=0.2)),
        )
        loop.start()
        loop.join(10)
    assert not loop.is_alive()
    assert len(done) == 2
    figures = read_runs(platform.redis)[component]
    assert figures == RunFigures(
        runs=4,
        failures=2,
        last_run_ms=figures.last_run_ms,
        last_ok_ms=figures.last_run_ms,
        last_error="ValueError: a bad row",
    )
    lines = [r.getMessage() for r in caplog.records]
    assert any("ConnectionError: Connection refused; trying again in" in line for line in lines)
    traced = [r for r in caplog.records if r.exc_info and "step failed" in r.getMessage()]
    assert len(traced) == 1 and "a bad row" in str(traced[0].exc_info[1])  # type: ignore[index]
    platform.redis.delete(runs_key(component))


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(every=2.0, cap=10.0)
    assert [backoff.pause(n) for n in range(6)] == [2.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert Backoff(every=30.0).pause(3) == 30.0  # never more often than asked


def test_a_single_reap_records_its_run(platform: Platform) -> None:
    before = read_runs(platform.redis).get("reaper")
    out = subprocess.run(
        [FLASHSALE, "reap"], env=platform.env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    after = read_runs(platform.redis)["reaper"]
    assert after.runs == (before.runs if before else 0) + 1
    assert after.last_ok_ms == after.last_run_ms > (before.last_run_ms if before else 0)


def bare_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    return env | {"FLASHSALE_DATA_DIR": tempfile.mkdtemp(prefix="flashsale-none-")} | extra


@pytest.mark.parametrize("command", [["sale", "list"], ["sale", "status", "tv-drop"]])
def test_sale_commands_with_nothing_running_say_what_to_do(command: list[str]) -> None:
    out = subprocess.run(
        [FLASHSALE, *command], env=bare_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "flashsale up" in lines[0] and "FLASHSALE_REDIS_URL" in lines[0]


def test_sale_list_with_storage_unreachable_is_one_line(platform: Platform) -> None:
    platform.sale()  # so that listing reads Redis too
    refused = f"redis://127.0.0.1:{free_port()}/0"
    for env, what in (
        (
            bare_env(FLASHSALE_REDIS_URL=refused, FLASHSALE_DATABASE_URL=platform.database_url),
            "Redis",
        ),
        (
            bare_env(
                FLASHSALE_REDIS_URL=platform.redis_url,
                FLASHSALE_DATABASE_URL=f"postgresql://x@127.0.0.1:{free_port()}/x",
            ),
            "PostgreSQL",
        ),
    ):
        out = subprocess.run(
            [FLASHSALE, "sale", "list"], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 1, out.stdout
        assert "Traceback" not in out.stderr
        assert out.stderr.startswith(f"Error: cannot reach {what}"), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
