"""All configuration, read from FLASHSALE_* environment variables.

FLASHSALE_REDIS_URL names one Redis (`redis://`, `rediss://` for TLS) or a Redis Cluster
(`redis+cluster://[[user]:password@]host:port[,host:port...]`, `rediss+cluster://` for
TLS; the nodes listed seed the topology). What a cluster cannot do is refused by
`check_redis` when a component starts, naming the setting to change: the Celery broker
is then a plain Redis of its own (FLASHSALE_BROKER_URL), and accepted reservations are
handed on after the script ('publish'), never by it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "changethis"})
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme: TLS
DEFAULT_REDIS_PORT = 6379


@dataclass(frozen=True, slots=True)
class ClusterAddress:
    """A Redis Cluster URL taken apart: the seed nodes and what every node is asked with."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False


def is_cluster_url(url: str) -> bool:
    """Whether `url` names a Redis Cluster (`redis+cluster://`, `rediss+cluster://`)."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def _node(part: str) -> tuple[str, int]:
    if part.startswith("["):  # [IPv6]:port
        host, _, rest = part[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
    if not host:
        raise ValueError(f"no host in {part!r}")
    if not port:
        return host, DEFAULT_REDIS_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {part!r}")
    return host, int(port)


def parse_cluster_url(url: str) -> ClusterAddress:
    """The one reading of a cluster URL; a ValueError says what is wrong with it.

    `redis+cluster://[[user]:password@]host[:port][,host[:port]...][/0]`: a cluster has
    only database 0, and takes no query options."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        raise ValueError("a Redis Cluster URL starts with redis+cluster:// or rediss+cluster://")
    netloc, _, path = rest.partition("/")
    if "?" in netloc or "?" in path or "#" in rest:
        raise ValueError("a Redis Cluster URL takes no query options")
    if path not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only database 0, not {path!r}")
    userinfo, at, hosts = netloc.rpartition("@")
    username: str | None = None
    password: str | None = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_node(part.strip()) for part in hosts.split(",") if part.strip())
    if not nodes:
        raise ValueError("a Redis Cluster URL names at least one host:port")
    return ClusterAddress(nodes, username, password, CLUSTER_SCHEMES[scheme.lower()])


class Settings(BaseSettings):
    """One place for every knob; the same variables in containers and locally."""

    model_config = SettingsConfigDict(env_prefix="FLASHSALE_", extra="ignore")

    redis_url: str | None = Field(default=None, description="Redis holding stock.")
    database_url: str | None = Field(default=None, description="PostgreSQL holding orders.")
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (one Redis); defaults to redis_url, and is required when "
        "that is a Redis Cluster.",
    )
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 key for JWTs.")
    data_dir: Path = Field(default=Path(".flashsale"), description="Local data folder.")

    handoff: Literal["auto", "script", "publish"] = Field(
        default="auto",
        description=(
            "How an accepted reservation reaches Celery. 'script': the reserve script pushes "
            "the task message itself (reserve and enqueue are one atomic step; needs the "
            "broker on the same Redis, not a Redis Cluster). 'publish': the API pushes it "
            "after the script. 'auto': 'script' when the broker is the stock Redis, "
            "'publish' otherwise (always with a Redis Cluster)."
        ),
    )
    queue: str = Field(default="flashsale.orders", description="Celery queue for orders.")
    orders_per_second: float = Field(
        default=500.0, gt=0, description="Steady pace at which each worker persists orders."
    )
    worker_concurrency: int = Field(default=4, ge=1)
    sweep_after_seconds: float = Field(
        default=30.0, gt=0, description="Outbox age after which sweep re-publishes."
    )
    sweep_max_backlog: int = Field(
        default=1000,
        ge=0,
        description="Sweep re-publishes nothing while more messages than this wait in the queue.",
    )
    reap_batch_size: int = Field(default=500, ge=1)
    publish_timeout_seconds: float = Field(default=0.5, gt=0)
    max_body_bytes: int = Field(default=4096, ge=64)
    max_token_bytes: int = Field(
        default=8192,
        ge=64,
        description="Largest bearer token taken. A 255-character user id of emoji takes "
        "about 4,200 bytes once PyJWT has escaped it.",
    )
    token_cache_size: int = Field(default=65536, ge=0)
    max_token_lifetime_seconds: int = Field(
        default=0,
        ge=0,
        description=(
            "Refuse tokens whose `exp` lies further ahead than this (with 30 s of leeway for "
            "clocks); `flashsale token --ttl` is held to it too. 0: no cap, as tokens come "
            "from the shop's own issuer (every token must still carry an `exp`)."
        ),
    )
    body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "A request body that has not fully arrived this long after the request began "
            "is answered 408, with Connection: close."
        ),
    )
    api_workers: int = Field(default=1, ge=1)
    sold_out_cache_seconds: float = Field(
        default=0.25,
        ge=0,
        description="How long an API process answers sold_out itself after Redis did (0: off).",
    )

    @property
    def redis_cluster(self) -> bool:
        """Whether the stock Redis is a Redis Cluster."""
        return self.redis_url is not None and is_cluster_url(self.redis_url)

    @property
    def effective_broker_url(self) -> str | None:
        """FLASHSALE_BROKER_URL, else the stock Redis; never a cluster (None then)."""
        if self.broker_url:
            return self.broker_url
        return None if self.redis_cluster else self.redis_url

    @property
    def script_handoff(self) -> bool:
        if self.redis_cluster:
            return False  # the broker cannot live on the cluster (`check_redis`)
        if self.handoff == "auto":
            return self.effective_broker_url == self.redis_url
        return self.handoff == "script"

    def require_jwt_secret(self) -> str:
        """The signing key, or an error that stops the process from serving with none."""
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if secret.strip().lower() in PLACEHOLDER_SECRETS:
            raise RuntimeError(
                "FLASHSALE_JWT_SECRET is not set (or is a placeholder); "
                "refusing to start without a real signing key"
            )
        return secret

    def require_redis_url(self) -> str:
        """The stock Redis, once `check_redis` found nothing to refuse."""
        if not self.redis_url:
            raise RuntimeError(
                f"FLASHSALE_REDIS_URL is not set and no `flashsale up` runs in {self.data_dir}"
            )
        self.check_redis()
        return self.redis_url

    def require_broker_url(self) -> str:
        """The Celery broker: FLASHSALE_BROKER_URL, else the stock Redis (not a cluster)."""
        url = self.require_redis_url()
        return self.broker_url or url

    def check_redis(self) -> None:
        """Refuse what cannot work with the Redis configured, naming the setting to change
        (a RuntimeError, which the commands print as one line). A Redis Cluster cannot hold
        the Celery broker: its queues would be keys in many slots that Celery's commands
        cross; and the 'script' handoff pushes the task message from inside the reserve
        script, so it needs the broker on the stock Redis."""
        if self.broker_url and is_cluster_url(self.broker_url):
            raise RuntimeError(
                "FLASHSALE_BROKER_URL names a Redis Cluster; the Celery broker is one plain "
                "Redis (redis:// or rediss://)"
            )
        if not (self.redis_url and is_cluster_url(self.redis_url)):
            return
        try:
            parse_cluster_url(self.redis_url)
        except ValueError as exc:
            raise RuntimeError(f"FLASHSALE_REDIS_URL is not a usable cluster URL: {exc}") from None
        if not self.broker_url:
            raise RuntimeError(
                "FLASHSALE_REDIS_URL is a Redis Cluster, which cannot hold the Celery broker: "
                "set FLASHSALE_BROKER_URL to a plain Redis (redis://host:port/0)"
            )
        if self.handoff == "script":
            raise RuntimeError(
                "FLASHSALE_HANDOFF=script needs the Celery broker on the stock Redis, and a "
                "Redis Cluster cannot hold it: set FLASHSALE_HANDOFF=publish (or auto)"
            )

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                f"FLASHSALE_DATABASE_URL is not set and no `flashsale up` runs in {self.data_dir}"
            )
        return self.database_url

    def with_local_platform(self) -> Settings:
        """Fill what is not configured from a `flashsale up` running in the data folder:
        its Redis, its broker, its PostgreSQL and its signing key. Its broker comes with
        its Redis only: beside a cluster, the broker is never the cluster itself."""
        from flashsale.datadir import local_jwt_secret, running_servers

        update: dict[str, object] = {}
        if not (self.redis_url and self.database_url):
            servers = running_servers(self.data_dir)
            if servers:
                update["redis_url"] = self.redis_url or servers.redis_url
                update["database_url"] = self.database_url or servers.database_url
                if update["redis_url"] == servers.redis_url and not self.broker_url:
                    update["broker_url"] = servers.broker_url
        if self.jwt_secret is None:
            secret = local_jwt_secret(self.data_dir)
            if secret:
                update["jwt_secret"] = SecretStr(secret)
        return self.model_copy(update=update) if update else self


@lru_cache
def get_settings() -> Settings:
    return Settings().with_local_platform()
