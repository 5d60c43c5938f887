"""What the commands share: the settings, and the storage a command talks to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from flashsale.settings import Settings, get_settings
from flashsale.stock import Stock

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def settings() -> Settings:
    return get_settings()


def component_settings() -> Settings:
    """The settings of a component that starts: what cannot work with the Redis
    configured (`Settings.check_redis`) is one line naming the setting, not a traceback."""
    settings = get_settings()
    try:
        settings.check_redis()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


def sessions_and_stock() -> tuple[sessionmaker[Session], Stock]:
    from flashsale import clients

    settings = component_settings()
    if not (settings.redis_url and settings.database_url):
        raise click.ClickException(
            f"no Redis and PostgreSQL to talk to: run `flashsale up` (data folder "
            f"{settings.data_dir}), or set FLASHSALE_REDIS_URL and FLASHSALE_DATABASE_URL"
        )
    with reaching_storage():  # a cluster client reads the topology when it is made
        return clients.database(settings), clients.stock(settings)


@contextmanager
def reaching_storage() -> Iterator[None]:
    """Redis or PostgreSQL unreachable: one line that says which and why, no traceback."""
    import redis
    from redis.exceptions import RedisClusterException
    from sqlalchemy.exc import SQLAlchemyError

    from flashsale.loops import describe

    try:
        yield
    except (redis.RedisError, RedisClusterException) as exc:
        raise click.ClickException(
            f"cannot reach Redis ({describe(exc)}); is `flashsale up` running?"
        ) from None
    except SQLAlchemyError as exc:
        cause = describe(getattr(exc, "orig", None) or exc)
        raise click.ClickException(
            f"cannot reach PostgreSQL ({cause}); is `flashsale up` running?"
        ) from None
