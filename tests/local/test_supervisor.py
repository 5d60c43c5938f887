"""The supervisor restarts a child that exits, with a pause that doubles while it keeps
exiting and starts over once it has stayed up; it stops every child on `stop`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flashsale.local.supervisor import Backoff, Restarts, Supervisor


def test_pause_doubles_to_its_cap_and_starts_over_after_a_stable_run() -> None:
    restarts = Restarts(Backoff(first=0.5, cap=4.0, stable=60.0), started=0.0)
    pauses = []
    now = 1.0
    for _ in range(6):
        pauses.append(restarts.exited(now))
        restarts.restarted(now)
        now += 1.0
    assert pauses == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert restarts.count == 6
    assert restarts.exited(now + 60.0) == 0.5  # it stayed up a minute


def test_a_child_that_exits_is_restarted_with_growing_pauses(tmp_path: Path) -> None:
    notices: list[str] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    supervisor = Supervisor(
        env,
        log_dir=tmp_path,
        notice=notices.append,
        backoff=Backoff(first=0.2, cap=0.8, stable=60.0),
    )
    # `flashsale --help` prints and exits at once: a component that keeps dying.
    child = supervisor.start("flaky", ["--help"])
    first = child.proc.pid
    try:
        deadline = time.monotonic() + 30
        while len(notices) < 4 and time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.02)
    finally:
        supervisor.stop()
    assert notices[:4] == [
        "flaky exited with 0; restarting in 0.2s (restart 1)",
        "flaky exited with 0; restarting in 0.4s (restart 2)",
        "flaky exited with 0; restarting in 0.8s (restart 3)",
        "flaky exited with 0; restarting in 0.8s (restart 4)",
    ]
    assert child.proc.pid != first
    assert (tmp_path / "flaky.log").read_text().count("Usage:") >= 4  # one log across runs
    assert supervisor.children == []
