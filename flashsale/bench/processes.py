"""Background processes of a benchmark run: API servers, the SQL baseline, workers."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

from flashsale.embedded import free_port
from flashsale.local.process import Process

FLASHSALE = str(Path(sys.executable).parent / "flashsale")
START_TIMEOUT = 60.0


class HttpServer(Process):
    """A server process on a free port, ready once GET /healthz answers 200."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, port: int) -> None:
        super().__init__(args, env, log=log)
        self.port = port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        super().start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.args} exited; log {self.log}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.args} not ready within {START_TIMEOUT}s; log {self.log}")


def api_server(env: dict[str, str], log: Path, server: str, workers: int) -> HttpServer:
    port = free_port()
    args = [FLASHSALE, "api", "--port", str(port), "--server", server, "--workers", str(workers)]
    return HttpServer(args, env, log, port)


def baseline_server(env: dict[str, str], log: Path, server: str, workers: int) -> HttpServer:
    """The SQL row-lock baseline app, served by the same function as the API."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "flashsale.bench.serve_baseline",
        "--port",
        str(port),
        "--server",
        server,
        "--workers",
        str(workers),
    ]
    return HttpServer(args, env, log, port)


def worker_process(env: dict[str, str], log: Path, concurrency: int) -> Process:
    args = [FLASHSALE, "worker", "--concurrency", str(concurrency), "--pool", "prefork"]
    return Process(args, env, log=log)


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time used so far by these processes (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
