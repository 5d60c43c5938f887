"""The Redis and PostgreSQL of a local platform, in its data folder.

Only what is not configured by URL is started. Redis keeps an append-only file and
PostgreSQL its cluster in the folder, so a second `flashsale up` finds stock, sales and
orders as the first one left them. Ports are remembered and reused when still free, so
URLs stay the same across restarts."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from flashsale.embedded import PostgresServer, RedisServer, ServerError, free_port

PORTS_FILE = "ports.json"
LOCK_FILE = "up.lock"


class DataDirBusy(ServerError):
    """Another local platform runs in the same data folder."""


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` now. With SO_REUSEADDR, as the servers
    themselves bind (granian, uvicorn, redis-server and postgres all set it): connections
    closed a moment ago linger in TIME-WAIT for up to a minute and must not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _remembered_ports(data_dir: Path) -> dict[str, int]:
    try:
        raw = json.loads((data_dir / PORTS_FILE).read_text())
        return {str(k): int(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _port_for(data_dir: Path, name: str) -> int:
    port = _remembered_ports(data_dir).get(name)
    return port if port and port_is_free(port) else free_port()


def _remember_port(data_dir: Path, name: str, port: int) -> None:
    ports = _remembered_ports(data_dir) | {name: port}
    (data_dir / PORTS_FILE).write_text(json.dumps(ports) + "\n")


@dataclass
class LocalServers:
    data_dir: Path
    redis_url: str | None = None
    database_url: str | None = None
    redis: RedisServer | None = None
    postgres: PostgresServer | None = None
    _lock: IO[str] | None = field(default=None, repr=False)

    def start(self) -> LocalServers:
        """Take the folder's lock, then start what has no URL yet."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held until stop
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            owner = self._lock.read().strip() or "another process"
            self._lock.close()
            self._lock = None
            raise DataDirBusy(
                f"a local FlashSale already runs in {self.data_dir} (pid {owner}); "
                "stop it first or use another FLASHSALE_DATA_DIR"
            ) from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()
        try:
            if not self.redis_url:
                self.redis = RedisServer(
                    self.data_dir / "redis", port=_port_for(self.data_dir, "redis")
                )
                self.redis.auto_port = True  # a remembered port taken meanwhile: pick another
                self.redis.start()
                _remember_port(self.data_dir, "redis", self.redis.port)
                self.redis_url = self.redis.url
            if not self.database_url:
                self.postgres = PostgresServer(
                    self.data_dir / "postgres", port=_port_for(self.data_dir, "postgres")
                )
                self.postgres.auto_port = True
                self.postgres.start()
                _remember_port(self.data_dir, "postgres", self.postgres.port)
                self.database_url = self.postgres.url
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.postgres:
            self.postgres.stop()
        if self.redis:
            self.redis.stop()
        if self._lock:
            self._lock.close()  # releases the lock
            self._lock = None
