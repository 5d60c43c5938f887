"""A command run in the background: the one way the platform, the benchmark and the tests
start and stop `flashsale` components and other helper processes.

Each process runs in its own session (process group), so a Ctrl-C in the terminal reaches
only its parent, and stopping it reaches everything it started (server workers, pool
processes still holding a port). Its output is appended to a log file, or handed line by
line to a sink."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT = 20.0
Lines = Callable[[str], None]


def _die_with_parent() -> None:
    """Ask the kernel for SIGTERM should the parent die without cleaning up (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: rely on our own cleanup
        pass


def _signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the process group led by `pid`, if it still has members."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Process:
    """`args` in its own process group; output appended to `log`, or sent line by line to
    `sink`. `start` may be called again after the process exited (a restart: the same log
    file goes on). With `die_with_parent`, the process gets SIGTERM should its parent
    die without stopping it."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        log: Path | None = None,
        sink: Lines | None = None,
        die_with_parent: bool = False,
    ) -> None:
        if (log is None) == (sink is None):
            raise ValueError("a process writes to a log file or to a sink, one of them")
        self.args = list(args)
        self.env = dict(env)
        self.log = log
        self.sink = sink
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    def start(self) -> Self:
        if self.log is not None:
            with open(self.log, "ab") as out:  # the child keeps its own descriptor
                self.proc = self._spawn(out)
        else:
            self.proc = self._spawn(subprocess.PIPE)
            self._pump = threading.Thread(target=self._send_lines, args=(self.proc,), daemon=True)
            self._pump.start()
        return self

    def _spawn(self, out: int | object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.args,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,  # type: ignore[arg-type]  # a file or PIPE
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )

    def _send_lines(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None and self.sink is not None
        for raw in proc.stdout:
            self.sink(raw.decode(errors="replace").rstrip())

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pids(self) -> list[int]:
        """The process and the rest of its group (server workers), for CPU accounting."""
        if self.proc is None:
            return []
        out = subprocess.run(
            ["ps", "-o", "pid=", "-g", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def signal_group(self, sig: int) -> None:
        """`sig` to the whole process group."""
        if self.proc is not None:
            _signal_group(self.proc.pid, sig)

    def kill_leftovers(self) -> None:
        """SIGKILL what the process left in its group (server workers, pool processes may
        still hold its port after it exited)."""
        self.signal_group(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> None:
        """`sig` to the group, then SIGKILL if it has not exited after `timeout`; whatever
        is left in the group is killed either way."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait()
        self.kill_leftovers()
        if self._pump is not None:
            self._pump.join(timeout=2)
            self._pump = None

    def output(self) -> str:
        """What the process wrote to its log file so far."""
        if self.log is None:
            return ""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])
