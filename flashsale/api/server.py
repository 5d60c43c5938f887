"""Run an ASGI application factory under granian or uvicorn, with the same settings.

`flashsale api` serves the FlashSale app through here, and the benchmark serves its SQL
baseline through the same function, so both see the same server, workers and options."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Literal

ServerName = Literal["granian", "uvicorn"]
SERVERS: tuple[ServerName, ...] = ("granian", "uvicorn")
# granian measured faster on this app, with shorter tails (see BENCHMARKS.md).
DEFAULT_SERVER: ServerName = "granian"
APP_FACTORY = "flashsale.api.app:create_app"


def serve(
    factory: str,
    host: str,
    port: int,
    workers: int,
    server: str = DEFAULT_SERVER,
) -> None:
    """Serve `factory` ("module:function") until interrupted."""
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}; choose one of {', '.join(SERVERS)}")
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each server process writes its metrics here; /metrics adds them up.
        metrics_dir = tempfile.mkdtemp(prefix="flashsale-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        if server == "granian":
            _granian(factory, host, port, workers)
        else:
            _uvicorn(factory, host, port, workers)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _granian(factory: str, host: str, port: int, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    Granian(
        factory,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        loop=Loops.uvloop,
        backlog=2048,
        log_level=LogLevels.warning,
        log_access=False,
        # A worker that dies (e.g. out of memory) comes back instead of halving capacity.
        respawn_failed_workers=True,
    ).serve()


def _uvicorn(factory: str, host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        backlog=2048,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
