"""`flashsale demo`: a whole flash sale on the local platform, with a report."""

from __future__ import annotations

from flashsale.embedded import ServerError, find_postgres_bin, find_redis_server
from flashsale.extras import MissingExtra, require_extra


def require_demo_extras() -> None:
    """What the demo needs beyond the core, checked before it starts: its report and chart
    (the `demo` extra) and a Redis and a PostgreSQL to run (the machine's or the `local`
    extra's). Raises MissingExtra with the one line that says what to install."""
    require_extra("demo", "flashsale demo")
    try:
        find_redis_server()
        find_postgres_bin()
    except ServerError as exc:
        raise MissingExtra(f"flashsale demo: {exc}") from None
