"""Redis and a migrated PostgreSQL for one platform: the one way `flashsale up`, the demo,
the benchmark and the tests get their storage.

In a data folder (`Storage.data_folder`, what `flashsale up` and the demo use) only what is
not configured by URL is started. Redis keeps an append-only file and PostgreSQL its
cluster in the folder, so a second `flashsale up` finds stock, sales and orders as the
first one left them. Ports are remembered and reused when still free, so URLs stay the
same across restarts, and a lock keeps a second platform out of the folder.

Throwaway storage (`Storage.throwaway`, the benchmark and the tests) lives in a folder of
its own on fresh ports, with the durability the caller asks for. Either way the database
is migrated before `start` returns.

With `cluster_masters` (`flashsale up --redis-cluster N`) the stock Redis is a local Redis
Cluster of that many masters, each with a replica (`cluster.LocalRedisCluster`), and the
Celery broker a Redis of its own, since a cluster cannot hold it. The cluster is made
afresh on each start, on free ports: its stock does not outlive the platform (the sales
and orders in PostgreSQL do; `flashsale sale rebuild` puts a sale back into Redis)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from flashsale.db.migrate import upgrade
from flashsale.embedded import PostgresServer, RedisServer, ServerError, free_port
from flashsale.local.cluster import LocalRedisCluster

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
class Storage:
    root: Path
    redis_url: str | None = None
    database_url: str | None = None
    broker_url: str | None = None  # None: the broker is the stock Redis
    cluster_masters: int = 0  # more than 0: the stock Redis is a local Redis Cluster
    appendonly: bool = True  # Redis's append-only file (fsync every second)
    durable: bool = True  # PostgreSQL's fsync and synchronous commit
    in_data_folder: bool = True  # the folder's lock and remembered ports
    redis: RedisServer | None = None  # the stock Redis, when one Redis
    cluster: LocalRedisCluster | None = None  # the stock Redis, when a cluster
    broker: RedisServer | None = None  # the broker beside a cluster
    postgres: PostgresServer | None = None
    _lock: IO[str] | None = field(default=None, repr=False)

    @classmethod
    def data_folder(
        cls,
        data_dir: Path,
        redis_url: str | None = None,
        database_url: str | None = None,
        broker_url: str | None = None,
        cluster_masters: int = 0,
    ) -> Storage:
        """A local platform's storage in its data folder; a URL given is used as it is."""
        return cls(
            data_dir,
            redis_url=redis_url,
            database_url=database_url,
            broker_url=broker_url,
            cluster_masters=cluster_masters,
        )

    @classmethod
    def throwaway(
        cls, root: Path, appendonly: bool = False, durable: bool = False, cluster_masters: int = 0
    ) -> Storage:
        """A fresh Redis (or cluster and broker) and PostgreSQL in `root`, on free ports."""
        return cls(
            root,
            appendonly=appendonly,
            durable=durable,
            in_data_folder=False,
            cluster_masters=cluster_masters,
        )

    @property
    def redis_servers(self) -> list[tuple[str, RedisServer]]:
        """Every Redis server started here, named for the logs."""
        named = [("redis-server", self.redis), ("broker", self.broker)]
        if self.cluster:
            named += [(f"cluster node {i}", n) for i, n in enumerate(self.cluster.nodes)]
        return [(name, server) for name, server in named if server is not None]

    @property
    def urls(self) -> tuple[str, str]:
        """(Redis URL, database URL), once started."""
        assert self.redis_url and self.database_url, "storage not started"
        return self.redis_url, self.database_url

    def start(self) -> Storage:
        """Take the folder's lock (in a data folder), start what has no URL yet, migrate."""
        if self.cluster_masters and self.redis_url:
            raise ServerError(
                "a local Redis Cluster (--redis-cluster) takes the place of FLASHSALE_REDIS_URL: "
                "unset it, or leave out --redis-cluster"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        if self.in_data_folder:
            self._take_lock()
        try:
            if self.cluster_masters:
                if not self.broker_url:
                    self.broker = self._redis_server("broker")
                    self.broker_url = self.broker.url
                self._start_cluster()
            elif not self.redis_url:
                self.redis = self._redis_server("redis")
                self.redis_url = self.redis.url
            if not self.database_url:
                self.postgres = PostgresServer(
                    self.root / "postgres", port=self._port("postgres"), durable=self.durable
                )
                self.postgres.auto_port = True
                self.postgres.start()
                self._remember("postgres", self.postgres.port)
                self.database_url = self.postgres.url
            upgrade(self.database_url)
        except BaseException:
            self.stop()
            raise
        return self

    def _redis_server(self, name: str) -> RedisServer:
        """A Redis in `<root>/<name>`, on its remembered port when still free."""
        server = RedisServer(self.root / name, port=self._port(name), appendonly=self.appendonly)
        server.auto_port = True  # a remembered port taken meanwhile: pick another
        server.start()
        self._remember(name, server.port)
        return server

    def _start_cluster(self) -> None:
        folder = self.root / "redis-cluster"
        shutil.rmtree(folder, ignore_errors=True)  # nodes remember the last run's peers
        self.cluster = LocalRedisCluster(folder, masters=self.cluster_masters)
        self.cluster.start()
        self.redis_url = self.cluster.url

    def _take_lock(self) -> None:
        self._lock = open(self.root / LOCK_FILE, "a+")  # noqa: SIM115 - held until stop
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            owner = self._lock.read().strip() or "another process"
            self._lock.close()
            self._lock = None
            raise DataDirBusy(
                f"a local FlashSale already runs in {self.root} (pid {owner}); "
                "stop it first or use another FLASHSALE_DATA_DIR"
            ) from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()

    def _port(self, name: str) -> int:
        return _port_for(self.root, name) if self.in_data_folder else free_port()

    def _remember(self, name: str, port: int) -> None:
        if self.in_data_folder:
            _remember_port(self.root, name, port)

    def stop(self) -> None:
        if self.postgres:
            self.postgres.stop()
        if self.cluster:
            self.cluster.stop()
        for server in (self.redis, self.broker):
            if server:
                server.stop()
        if self._lock:
            self._lock.close()  # releases the lock
            self._lock = None

    def __enter__(self) -> Storage:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
