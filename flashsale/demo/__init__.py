"""`flashsale demo`: a whole flash sale on the local platform, with a report."""

from __future__ import annotations

from flashsale.embedded import ServerError, find_postgres_bin, find_redis_cli, find_redis_server
from flashsale.extras import MissingExtra, require_extra


def require_demo_extras(cluster: bool = False) -> None:
    """What the demo needs beyond the core, checked before it starts: its report and chart
    (the `demo` extra) and a Redis and a PostgreSQL to run (the machine's or the `local`
    extra's), and redis-cli to join a cluster. Raises MissingExtra with the one line that
    says what to install."""
    require_extra("demo", "flashsale demo")
    try:
        find_redis_server()
        find_postgres_bin()
        if cluster:
            find_redis_cli()
    except ServerError as exc:
        raise MissingExtra(f"flashsale demo: {exc}") from None
