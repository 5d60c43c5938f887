"""Where a running `flashsale up` serves its own Redis and PostgreSQL.

`flashsale up` writes `servers.json` into its data folder; any other command run with the
same folder and no URLs of its own reads it, so `sale apply` and `reap` work beside it.
The broker is recorded too: beside `up --redis-cluster` it is a Redis of its own, and a
command must not take the cluster for it.
The JWT signing key of a local platform is kept in the folder too (mode 0600), so tokens
from `flashsale token` are accepted by the API that `up` serves."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

SERVERS_FILE = "servers.json"
SECRET_FILE = "jwt-secret"


@dataclass(frozen=True, slots=True)
class PlatformRecord:
    redis_url: str
    database_url: str
    pid: int  # the `flashsale up` process that owns them
    broker_url: str | None = None  # None: the broker is the stock Redis


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def record_servers(data_dir: Path, servers: PlatformRecord) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (SERVERS_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(servers), indent=2) + "\n")
    tmp.replace(data_dir / SERVERS_FILE)  # readers never see half a file


def forget_servers(data_dir: Path) -> None:
    (data_dir / SERVERS_FILE).unlink(missing_ok=True)


def running_servers(data_dir: Path) -> PlatformRecord | None:
    """The servers of a `flashsale up` that is still running in `data_dir`, if any."""
    try:
        raw = json.loads((data_dir / SERVERS_FILE).read_text())
        servers = PlatformRecord(
            redis_url=str(raw["redis_url"]),
            database_url=str(raw["database_url"]),
            pid=int(raw["pid"]),
            broker_url=str(raw["broker_url"]) if raw.get("broker_url") else None,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return servers if _alive(servers.pid) else None


def local_jwt_secret(data_dir: Path, create: bool = False) -> str | None:
    """The local platform's signing key; made on first use when `create` is set."""
    path = data_dir / SECRET_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if not create:
            return None
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret
