"""The platform on this machine: `flashsale up` and `flashsale demo`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from flashsale.cli.group import main
from flashsale.settings import Settings
from flashsale.spec import MAX_SEGMENTS


@main.command()
@click.option("--stock", default=200, show_default=True, help="Units for sale.")
@click.option("--shoppers", default=3000, show_default=True, help="First-wave shoppers.")
@click.option("--spammers", default=100, show_default=True, help="Bots clicking 20 times each.")
@click.option("--second-wave", default=600, show_default=True, help="Shoppers coming back.")
@click.option("--payment-timeout", default=5, show_default=True, help="Seconds to pay.")
@click.option(
    "--segments",
    type=click.IntRange(min=1, max=MAX_SEGMENTS),
    default=1,
    show_default=True,
    help="The sale's spec.segments: its stock spread over this many hash slots.",
)
@click.option(
    "--redis-cluster",
    type=click.IntRange(min=3),
    default=None,
    metavar="N",
    help="Keep stock in a local Redis Cluster of N masters (3 or more), each with a "
    "replica, with the broker on a Redis of its own; the report shows each master's share.",
)
@click.option(
    "--waiting-room",
    is_flag=True,
    help="Put the sale behind a waiting room: the crowd joins, polls and buys once "
    "admitted; the report charts the queue and checks its gate.",
)
@click.option(
    "--order",
    type=click.Choice(["draw", "fifo"]),
    default="draw",
    show_default=True,
    help="With --waiting-room: the room's order.",
)
@click.option(
    "--admit-per-second",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="With --waiting-room: shoppers let in per second, at most.",
)
@click.option(
    "--shopping-seconds",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="With --waiting-room: how long an admitted shopper may buy.",
)
@click.option(
    "--overbook",
    type=click.FloatRange(min=0, min_open=True),
    default=1.5,
    show_default=True,
    help="With --waiting-room: admitted shoppers who have not bought stay within "
    "remaining units x this.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the report, chart and logs (default: <data dir>/demo).",
)
def demo(
    stock: int,
    shoppers: int,
    spammers: int,
    second_wave: int,
    payment_timeout: int,
    segments: int,
    redis_cluster: int | None,
    waiting_room: bool,
    order: str,
    admit_per_second: float,
    shopping_seconds: int,
    overbook: float,
    out: Path | None,
) -> None:
    """Run a whole flash sale on throwaway local servers and report on it.

    Exits non-zero if any invariant of the design fails."""
    from flashsale.demo import require_demo_extras

    require_demo_extras(cluster=bool(redis_cluster))  # one line naming what to install
    from rich.console import Console

    from flashsale.demo.plan import DemoPlan
    from flashsale.demo.run import run_demo, show

    try:
        plan = DemoPlan(
            stock=stock,
            shoppers=shoppers,
            spammers=spammers,
            second_wave=second_wave,
            payment_timeout_seconds=payment_timeout,
            segments=segments,
            waiting_room=waiting_room,
            order=order,
            admit_per_second=admit_per_second,
            shopping_seconds=shopping_seconds,
            overbook=overbook,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    logging.getLogger().setLevel(logging.WARNING)  # the progress bars tell the story
    console = Console()
    folder = (out or Settings().data_dir / "demo").resolve()
    report = run_demo(plan, folder, console, redis_cluster=redis_cluster or 0)
    show(report, console)
    sys.exit(0 if report.passed else 1)


@main.command()
@click.option("--port", default=8000, show_default=True, help="Port of the API.")
@click.option(
    "--api-workers", type=int, default=None, help="API processes (default: one per core, up to 4)."
)
@click.option(
    "--redis-cluster",
    type=click.IntRange(min=3),
    default=None,
    metavar="N",
    help="Keep stock in a local Redis Cluster of N masters (3 or more), each with a "
    "replica, with the broker on a Redis of its own.",
)
def up(port: int, api_workers: int | None, redis_cluster: int | None) -> None:
    """Run the whole platform locally in the foreground; Ctrl-C stops all of it.

    Without FLASHSALE_REDIS_URL / FLASHSALE_DATABASE_URL, starts its own Redis and
    PostgreSQL in FLASHSALE_DATA_DIR (default ./.flashsale), keeping data across runs.
    A local Redis Cluster is made afresh on each run: the sales and orders in PostgreSQL
    stay, and `flashsale sale rebuild` puts a sale's stock back."""
    from flashsale.embedded import ServerError
    from flashsale.local.platform import PlatformError
    from flashsale.local.up import run_up

    try:
        code = run_up(Settings(), port, api_workers, redis_cluster or 0)
    except (ServerError, PlatformError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)
