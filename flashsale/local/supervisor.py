"""Run several `flashsale` commands as child processes, restart those that exit, and stop
them together.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only us and we
stop the children in the order we choose (front door first, storage last). On Linux each
child also asks the kernel for SIGTERM should we die without cleaning up, so a killed
`flashsale up` leaves no orphans serving on its ports.

A child that exits is started again after a pause (`Backoff`: 0.5 s, doubling up to 30 s,
back to 0.5 s once it has stayed up for a minute); whatever it left in its process group
(server workers, pool processes still holding the port) is killed first."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flashsale.local.process import Process

LineSink = Callable[[str, str], None]  # (child name, line)
Notice = Callable[[str], None]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Pause before a restart: `first`, doubling with each quick exit in a row, at most
    `cap`; a process that stayed up `stable` seconds starts again from `first`."""

    first: float = 0.5
    cap: float = 30.0
    stable: float = 60.0

    def delay(self, quick_exits: int) -> float:
        return min(self.cap, self.first * 2.0 ** max(0, quick_exits - 1))


@dataclass
class Restarts:
    """When a process that exited is due to start again, and how often it was."""

    backoff: Backoff = field(default_factory=Backoff)
    count: int = 0
    quick_exits: int = 0
    started: float = field(default_factory=time.monotonic)
    due: float | None = None

    def exited(self, now: float) -> float:
        """Schedule the restart; returns the pause."""
        quick = now - self.started < self.backoff.stable
        self.quick_exits = self.quick_exits + 1 if quick else 1
        delay = self.backoff.delay(self.quick_exits)
        self.due = now + delay
        return delay

    def failed(self, now: float) -> float:
        """A restart that did not take: try again after a longer pause."""
        self.started = now
        return self.exited(now)

    def is_due(self, now: float) -> bool:
        return self.due is not None and now >= self.due

    def restarted(self, now: float) -> None:
        self.count += 1
        self.started = now
        self.due = None


@dataclass
class Child:
    name: str
    args: list[str]
    process: Process
    restarts: Restarts = field(default_factory=Restarts)

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self.process.proc is not None
        return self.process.proc


class Supervisor:
    """Children started with `start`, kept running with `check` (restarted when they
    exit), stopped with `stop`."""

    def __init__(
        self,
        env: dict[str, str],
        sink: LineSink | None = None,
        log_dir: Path | None = None,
        notice: Notice | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.env = env
        self.sink = sink
        self.log_dir = log_dir
        self.notice: Notice = notice or log.warning
        self.backoff = backoff or Backoff()
        self.children: list[Child] = []

    def start(self, name: str, args: Sequence[str]) -> Child:
        """Run `flashsale <args>`; its output goes to the sink line by line, or to
        `<log_dir>/<name>.log`."""
        log_file: Path | None = None
        if self.sink is None:
            assert self.log_dir is not None
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_file = self.log_dir / f"{name}.log"
        sink = self.sink
        process = Process(
            [sys.executable, "-m", "flashsale", *args],
            self.env,
            log=log_file,
            sink=(lambda line: sink(name, line)) if sink else None,
            die_with_parent=True,
        ).start()
        child = Child(name, list(args), process, Restarts(self.backoff))
        self.children.append(child)
        return child

    def exited(self) -> Child | None:
        """A child that is no longer running, if any."""
        return next((c for c in self.children if not c.process.alive()), None)

    def check(self) -> None:
        """One round: schedule a restart for each child that exited, and restart those
        whose pause is over. Called over and over by the platform's watcher."""
        now = time.monotonic()
        for child in self.children:
            restarts = child.restarts
            if restarts.is_due(now):
                child.process.env = dict(self.env)
                child.process.start()
                restarts.restarted(now)
            elif restarts.due is None and not child.process.alive():
                # Leftovers (server workers, pool processes) may still hold the port.
                child.process.kill_leftovers()
                delay = restarts.exited(now)
                self.notice(
                    f"{child.name} exited with {child.process.returncode}; "
                    f"restarting in {delay:.1f}s (restart {restarts.count + 1})"
                )

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM each child's whole process group, newest first; SIGKILL what is still
        there after `timeout`."""
        for child in reversed(self.children):
            child.process.stop(timeout=timeout)
        self.children.clear()
