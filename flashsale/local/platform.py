"""The whole platform on one machine: storage, migrations, API, worker, reaper, sweeper.

`flashsale up` runs it in the foreground with interleaved logs; `flashsale demo` runs it
quietly (logs into files) and drives a crowd against it. With `redis_cluster` (N masters)
the stock Redis is a local Redis Cluster and the broker a Redis of its own (`storage`);
the components are the same, told both URLs.

Once it is ready, a watcher thread keeps it running: a component that exits is restarted
with backoff (see `supervisor`), and so are its own Redis and PostgreSQL, on the same port
and data folder, so the components' URLs stay valid and they reconnect by themselves.
Only `stop` ends it."""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from flashsale.datadir import (
    PlatformRecord,
    forget_servers,
    local_jwt_secret,
    record_servers,
)
from flashsale.embedded import PostgresServer, RedisServer, ServerError
from flashsale.local.storage import Storage, port_is_free
from flashsale.local.supervisor import LineSink, Notice, Restarts, Supervisor
from flashsale.settings import Settings

READY_TIMEOUT = 90.0

log = logging.getLogger(__name__)


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
        redis_cluster: int = 0,
    ) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.port = port
        self.api_workers = api_workers or default_api_workers()
        self.loops = loops
        self.servers = Storage.data_folder(
            self.data_dir,
            redis_url=settings.redis_url,
            database_url=settings.database_url,
            broker_url=settings.broker_url,
            cluster_masters=redis_cluster,
        )
        self.notice: Notice = (lambda line: sink("up", line)) if sink else log.warning
        self.supervisor = Supervisor({}, sink=sink, log_dir=log_dir, notice=self.notice)
        self.jwt_secret = ""
        self._recorded = False
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._server_restarts: dict[str, Restarts] = {}

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

    @property
    def broker_url(self) -> str | None:
        """The Celery broker's Redis, or None when it is the stock Redis."""
        return self.servers.broker_url

    def start(self) -> LocalPlatform:
        if not port_is_free(self.port):
            raise PlatformError(f"port {self.port} is taken: choose another with --port")
        self.servers.start()
        try:
            self._check_children_settings()
            record = PlatformRecord(
                self.redis_url, self.database_url, os.getpid(), broker_url=self.broker_url
            )
            record_servers(self.data_dir, record)
            self._recorded = True
            if self.settings.jwt_secret:
                self.jwt_secret = self.settings.jwt_secret.get_secret_value()
            else:
                self.jwt_secret = local_jwt_secret(self.data_dir, create=True) or ""
            self.supervisor.env = self._child_env()
            self._start_children()
            self._wait_until_ready()
            self._watcher = threading.Thread(target=self._watch, name="watcher", daemon=True)
            self._watcher.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_children_settings(self) -> None:
        """What the components would refuse on these servers (the 'script' handoff on a
        cluster, say), refused once here rather than by each of them at start."""
        update = {"redis_url": self.redis_url, "broker_url": self.broker_url}
        try:
            self.settings.model_copy(update=update).check_redis()
        except RuntimeError as exc:
            raise PlatformError(str(exc)) from None

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update(
            FLASHSALE_REDIS_URL=self.redis_url,
            FLASHSALE_DATABASE_URL=self.database_url,
            FLASHSALE_JWT_SECRET=self.jwt_secret,
            FLASHSALE_DATA_DIR=str(self.data_dir),
            PYTHONUNBUFFERED="1",  # log lines as they happen, not per buffer
        )
        if self.broker_url:
            env["FLASHSALE_BROKER_URL"] = self.broker_url
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

    def run_until(self, stop: threading.Event) -> None:
        """Serve until `stop` is set; the watcher keeps every part running meanwhile."""
        while not stop.wait(0.5):
            pass

    def _watch(self, every: float = 0.2) -> None:
        while not self._stopping.wait(every):
            try:
                self.supervisor.check()
                self._check_servers()
            except Exception:  # noqa: BLE001 - the watcher must outlive one bad round
                log.exception("watching the platform")

    def _check_servers(self) -> None:
        servers: list[tuple[str, RedisServer | PostgresServer | None]] = [
            *self.servers.redis_servers,
            ("postgres", self.servers.postgres),
        ]
        now = time.monotonic()
        for name, server in servers:
            if server is None or server.proc is None:
                continue
            restarts = self._server_restarts.setdefault(name, Restarts())
            if restarts.is_due(now):
                server.auto_port = False  # the components know this port
                try:
                    server.start()
                except ServerError as exc:
                    delay = restarts.failed(time.monotonic())
                    first = str(exc).splitlines()[0]
                    self.notice(f"{name} did not start again ({first}); retrying in {delay:.1f}s")
                    continue
                restarts.restarted(time.monotonic())
                self.notice(f"{name} is back on port {server.port}")
            elif restarts.due is None and server.proc.poll() is not None:
                delay = restarts.exited(now)
                self.notice(
                    f"{name} exited with {server.proc.returncode}; restarting on port "
                    f"{server.port} in {delay:.1f}s (restart {restarts.count + 1})"
                )

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None
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
