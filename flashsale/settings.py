"""All configuration, read from FLASHSALE_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "changethis"})


class Settings(BaseSettings):
    """One place for every knob; the same variables in containers and locally."""

    model_config = SettingsConfigDict(env_prefix="FLASHSALE_", extra="ignore")

    redis_url: str | None = Field(default=None, description="Redis holding stock.")
    database_url: str | None = Field(default=None, description="PostgreSQL holding orders.")
    broker_url: str | None = Field(
        default=None, description="Celery broker (Redis); defaults to redis_url."
    )
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 key for JWTs.")
    data_dir: Path = Field(default=Path(".flashsale"), description="Local data folder.")

    handoff: Literal["auto", "script", "publish"] = Field(
        default="auto",
        description=(
            "How an accepted reservation reaches Celery. 'script': the reserve script pushes "
            "the task message itself (reserve and enqueue are one atomic step; needs the "
            "broker on the same Redis, not a Redis Cluster). 'publish': the API pushes it "
            "after the script. 'auto': 'script' when the broker is the stock Redis."
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
    def effective_broker_url(self) -> str | None:
        return self.broker_url or self.redis_url

    @property
    def script_handoff(self) -> bool:
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
        if not self.redis_url:
            raise RuntimeError(
                f"FLASHSALE_REDIS_URL is not set and no `flashsale up` runs in {self.data_dir}"
            )
        return self.redis_url

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                f"FLASHSALE_DATABASE_URL is not set and no `flashsale up` runs in {self.data_dir}"
            )
        return self.database_url

    def with_local_platform(self) -> Settings:
        """Fill what is not configured from a `flashsale up` running in the data folder:
        its Redis, its PostgreSQL and its signing key."""
        from flashsale.datadir import local_jwt_secret, running_servers

        update: dict[str, object] = {}
        if not (self.redis_url and self.database_url):
            servers = running_servers(self.data_dir)
            if servers:
                update["redis_url"] = self.redis_url or servers.redis_url
                update["database_url"] = self.database_url or servers.database_url
        if self.jwt_secret is None:
            secret = local_jwt_secret(self.data_dir)
            if secret:
                update["jwt_secret"] = SecretStr(secret)
        return self.model_copy(update=update) if update else self


@lru_cache
def get_settings() -> Settings:
    return Settings().with_local_platform()
