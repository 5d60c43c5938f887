"""The whole platform on one machine: storage, migrations, API, worker, reaper, sweeper.

`flashsale up` runs it in the foreground with interleaved logs; `flashsale demo` runs it
quietly (logs into files) and drives a crowd against it."""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from flashsale.db.migrate import upgrade
from flashsale.embedded import ServerError
from flashsale.local.registry import (
    PlatformRecord,
    forget_servers,
    local_jwt_secret,
    record_servers,
)
from flashsale.local.servers import LocalServers, port_is_free
from flashsale.local.supervisor import Child, LineSink, Supervisor
from flashsale.settings import Settings

READY_TIMEOUT = 90.0


class PlatformError(RuntimeError):
    pass


def default_api_workers() -> int:
    """One server process per core, at most four: the rest of the platform needs CPU too."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Loops:
    """How often the reaper and the sweeper run, in seconds."""

    reap_every: float = 2.0
    sweep_every: float = 5.0


class LocalPlatform:
    def __init__(
        self,
        settings: Settings,
        port: int,
        api_workers: int | None = None,
        sink: LineSink | None = None,
        log_dir: Path | None = None,
        loops: Loops = Loops(),
    ) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.port = port
        self.api_workers = api_workers or default_api_workers()
        self.loops = loops
        self.servers = LocalServers(
            self.data_dir, redis_url=settings.redis_url, database_url=settings.database_url
        )
        self.supervisor = Supervisor({}, sink=sink, log_dir=log_dir)
        self.jwt_secret = ""
        self._recorded = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        assert self.servers.redis_url
        return self.servers.redis_url

    @property
    def database_url(self) -> str:
        assert self.servers.database_url
        return self.servers.database_url

    def start(self) -> LocalPlatform:
        if not port_is_free(self.port):
            raise PlatformError(f"port {self.port} is taken: choose another with --port")
        self.servers.start()
        try:
            record_servers(
                self.data_dir, PlatformRecord(self.redis_url, self.database_url, os.getpid())
            )
            self._recorded = True
            upgrade(self.database_url)
            if self.settings.jwt_secret:
                self.jwt_secret = self.settings.jwt_secret.get_secret_value()
            else:
                self.jwt_secret = local_jwt_secret(self.data_dir, create=True) or ""
            self.supervisor.env = self._child_env()
            self._start_children()
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update(
            FLASHSALE_REDIS_URL=self.redis_url,
            FLASHSALE_DATABASE_URL=self.database_url,
            FLASHSALE_JWT_SECRET=self.jwt_secret,
            FLASHSALE_DATA_DIR=str(self.data_dir),
            PYTHONUNBUFFERED="1",  # log lines as they happen, not per buffer
        )
        return env

    def _start_children(self) -> None:
        start = self.supervisor.start
        start("worker", ["--log-level", "WARNING", "worker", "--loglevel", "WARNING"])
        start("reaper", ["reap", "--every", str(self.loops.reap_every)])
        start("sweeper", ["sweep", "--every", str(self.loops.sweep_every)])
        # The front door opens last and closes first.
        start(
            "api",
            ["api", "--port", str(self.port), "--workers", str(self.api_workers)],
        )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            dead = self.supervisor.exited()
            if dead:
                raise PlatformError(f"{dead.name} exited with {dead.proc.returncode} at start")
            try:
                with urllib.request.urlopen(self.api_url + "/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):  # not listening yet, or 503
                pass
            time.sleep(0.2)
        raise PlatformError(f"the API was not ready within {READY_TIMEOUT:.0f}s")

    def run_until(self, stop: threading.Event) -> Child | None:
        """Serve until `stop` is set (None) or a component exits (that component)."""
        return self.supervisor.first_exit(stop)

    def stop(self) -> None:
        self.supervisor.stop()
        if self._recorded:
            forget_servers(self.data_dir)
            self._recorded = False
        self.servers.stop()

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = ["LocalPlatform", "Loops", "PlatformError", "ServerError", "default_api_workers"]
