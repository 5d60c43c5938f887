"""Run several `flashsale` commands as child processes and stop them together.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only us and we
stop the children in the order we choose (front door first, storage last). On Linux each
child also asks the kernel for SIGTERM should we die without cleaning up, so a killed
`flashsale up` leaves no orphans serving on its ports."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1
LineSink = Callable[[str, str], None]  # (child name, line)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: rely on our own cleanup
        pass


@dataclass
class Child:
    name: str
    args: list[str]
    proc: subprocess.Popen[bytes]
    pump: threading.Thread | None = None
    log: IO[bytes] | None = field(default=None, repr=False)


class Supervisor:
    """Children started with `start`, watched with `first_exit`, stopped with `stop`."""

    def __init__(
        self, env: dict[str, str], sink: LineSink | None = None, log_dir: Path | None = None
    ) -> None:
        self.env = env
        self.sink = sink
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(self, name: str, args: Sequence[str]) -> Child:
        """Run `flashsale <args>`; its output goes to the sink line by line, or to
        `<log_dir>/<name>.log`."""
        argv = [sys.executable, "-m", "flashsale", *args]
        log: IO[bytes] | None = None
        if self.sink is None:
            assert self.log_dir is not None
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log or subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child = Child(name, list(args), proc, log=log)
        if self.sink is not None:
            child.pump = threading.Thread(target=self._pump, args=(child,), daemon=True)
            child.pump.start()
        self.children.append(child)
        return child

    def _pump(self, child: Child) -> None:
        assert child.proc.stdout is not None and self.sink is not None
        for raw in child.proc.stdout:
            self.sink(child.name, raw.decode(errors="replace").rstrip())

    def exited(self) -> Child | None:
        """A child that is no longer running, if any."""
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def first_exit(self, stop: threading.Event, every: float = 0.2) -> Child | None:
        """Block until `stop` is set (None) or a child exits (that child)."""
        while not stop.wait(every):
            child = self.exited()
            if child:
                return child
        return None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM each child's whole process group, newest first; SIGKILL what is still
        there after `timeout`."""
        for child in reversed(self.children):
            _signal_group(child.proc, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait()
            # Helpers the child started (server workers, pool processes) share its group.
            _signal_group(child.proc, signal.SIGKILL)
            if child.pump:
                child.pump.join(timeout=2)
            if child.log:
                child.log.close()
        self.children.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
