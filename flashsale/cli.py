"""`flashsale`: one entry point for every component."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from flashsale.bench.command import bench as bench_command
from flashsale.settings import Settings, get_settings
from flashsale.stock import Stock

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def _settings() -> Settings:
    return get_settings()


def _sessions_and_stock() -> tuple[sessionmaker[Session], Stock]:
    from flashsale import clients

    settings = _settings()
    try:
        return clients.database(settings), clients.stock(settings)
    except RuntimeError:
        raise click.ClickException(
            f"no Redis and PostgreSQL to talk to: run `flashsale up` (data folder "
            f"{settings.data_dir}), or set FLASHSALE_REDIS_URL and FLASHSALE_DATABASE_URL"
        ) from None


@contextmanager
def _reaching_storage() -> Iterator[None]:
    """Redis or PostgreSQL unreachable: one line that says which and why, no traceback."""
    import redis
    from sqlalchemy.exc import SQLAlchemyError

    from flashsale.loops import describe

    try:
        yield
    except redis.RedisError as exc:
        raise click.ClickException(
            f"cannot reach Redis ({describe(exc)}); is `flashsale up` running?"
        ) from None
    except SQLAlchemyError as exc:
        cause = describe(getattr(exc, "orig", None) or exc)
        raise click.ClickException(
            f"cannot reach PostgreSQL ({cause}); is `flashsale up` running?"
        ) from None


@click.group()
@click.option("--log-level", default="INFO", show_default=True)
def main(log_level: str) -> None:
    """FlashSale: flash sales that never oversell."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for chatty in ("httpx", "alembic.runtime.plugins"):  # one line per request or plugin
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.root.level))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", type=int, default=None, help="Server processes (FLASHSALE_API_WORKERS).")
@click.option(
    "--server",
    type=click.Choice(["granian", "uvicorn"]),
    default="granian",
    show_default=True,
    help="ASGI server.",
)
def api(host: str, port: int, workers: int | None, server: str) -> None:
    """Serve the HTTP API."""
    from flashsale.api.server import APP_FACTORY, serve

    settings = _settings()
    try:
        settings.require_jwt_secret()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    serve(APP_FACTORY, host, port, workers or settings.api_workers, server)


@main.command()
@click.option("--concurrency", type=int, default=None)
@click.option("--pool", default="prefork", show_default=True)
@click.option("--loglevel", default="INFO", show_default=True, help="Celery's log level.")
def worker(concurrency: int | None, pool: str, loglevel: str) -> None:
    """Run a Celery worker that persists orders."""
    from flashsale.worker.app import app

    settings = _settings()
    app.worker_main(
        [
            "worker",
            "--queues",
            settings.queue,
            "--concurrency",
            str(concurrency or settings.worker_concurrency),
            "--pool",
            pool,
            "--loglevel",
            loglevel,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from flashsale.db.migrate import upgrade

    upgrade(_settings().require_database_url())
    click.echo("database is up to date")


def _repeat(component: str, every: float | None, step: Callable[[], None]) -> None:
    """Run `step` once (recorded, and exit 1 if it failed), or every `every` seconds
    through outages until a signal stops the process."""
    from flashsale import clients
    from flashsale.loops import describe, run_every, run_step

    recorder = clients.stock_redis(_settings())
    if every:
        run_every(component, every, step, recorder)
        return
    error = run_step(component, step, recorder)
    if error is not None:
        raise click.ClickException(f"{component} failed: {describe(error)}")


@main.command()
@click.option("--every", type=float, default=None, help="Repeat every N seconds.")
def reap(every: float | None) -> None:
    """Expire unpaid orders and return their units to stock."""
    from flashsale.reaper import reap as run_reap

    sessions, stock = _sessions_and_stock()
    batch = _settings().reap_batch_size

    def step() -> None:
        report = run_reap(sessions, stock, batch)
        if report.expired or report.restored or not every:  # a quiet loop when idle
            click.echo(f"expired {report.expired} orders, returned {report.restored} to stock")

    _repeat("reaper", every, step)


@main.command()
@click.option("--every", type=float, default=None, help="Repeat every N seconds.")
@click.option(
    "--older-than", type=float, default=None, help="Seconds (FLASHSALE_SWEEP_AFTER_SECONDS)."
)
def sweep(every: float | None, older_than: float | None) -> None:
    """Re-publish reservations that no worker has persisted in time."""
    from flashsale import clients
    from flashsale.sweeper import sweep as run_sweep

    settings = _settings()
    sessions, stock = _sessions_and_stock()
    broker = clients.broker_redis(settings)
    age = older_than if older_than is not None else settings.sweep_after_seconds

    def step() -> None:
        count = run_sweep(sessions, stock, broker, settings.queue, age, settings.sweep_max_backlog)
        if count or not every:
            click.echo(f"re-published {count} reservations")

    _repeat("sweeper", every, step)


@main.command()
@click.option(
    "--namespace",
    envvar="FLASHSALE_OPERATOR_NAMESPACE",
    default="",
    help="Namespace to serve (FLASHSALE_OPERATOR_NAMESPACE); empty serves all namespaces.",
)
@click.option("--liveness", default="http://0.0.0.0:8080/healthz", show_default=True)
def operator(namespace: str, liveness: str) -> None:
    """Run the Kubernetes operator for FlashSale resources."""
    from flashsale.operator.run import run

    common = _settings()  # with a `flashsale up` running in the data folder, its servers
    try:
        common.require_redis_url()
        common.require_database_url()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    run(namespace=namespace, liveness=liveness, common=common)


@main.command()
@click.argument("user")
@click.option(
    "--ttl",
    type=click.IntRange(min=1),
    default=None,
    help="Seconds (default 3600, or FLASHSALE_MAX_TOKEN_LIFETIME_SECONDS when that is set "
    "and lower; never more than it).",
)
def token(user: str, ttl: int | None) -> None:
    """Print a JWT for USER, signed with FLASHSALE_JWT_SECRET.

    Refuses what the API would refuse: a user id that is not 1 to 255 printable
    characters, and a lifetime over the configured cap."""
    from flashsale.api.auth import issue_token
    from flashsale.ids import user_id_problem

    problem = user_id_problem(user)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="'USER'")
    settings = _settings()
    cap = settings.max_token_lifetime_seconds
    if ttl is None:
        ttl = min(3600, cap) if cap else 3600
    elif cap and ttl > cap:
        raise click.BadParameter(
            f"{ttl} is over FLASHSALE_MAX_TOKEN_LIFETIME_SECONDS ({cap}): the API would "
            "refuse the token",
            param_hint="'--ttl'",
        )
    try:
        secret = settings.require_jwt_secret()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(issue_token(secret, user, ttl))


@main.group()
def sale() -> None:
    """Create, update and inspect sales."""


@sale.command("apply")
@click.option("-f", "--filename", type=click.Path(exists=True, path_type=Path), required=True)
def sale_apply(filename: Path) -> None:
    """Create or update sales from a FlashSale YAML file (one or many documents)."""
    from flashsale.sale_file import SaleFileError, read_sale_file
    from flashsale.sales import InvalidSale, apply_sale

    try:
        documents = read_sale_file(filename)
    except SaleFileError as exc:
        raise click.ClickException(str(exc)) from None
    sessions, stock = _sessions_and_stock()
    for doc in documents:
        try:
            remaining = apply_sale(sessions, stock, doc.name, doc.spec)
        except InvalidSale as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"flashsale/{doc.name} applied: {remaining} of {doc.spec.stock} units for sale")


@sale.command("rebuild")
@click.argument("name")
def sale_rebuild(name: str) -> None:
    """Rebuild a sale's stock in Redis from the orders in SQL.

    For a Redis that lost writes (failover, restart from an old snapshot): the sale stops
    taking reservations for a moment, then is loaded again from SQL."""
    from flashsale.sales import InvalidSale, rebuild_sale

    sessions, stock = _sessions_and_stock()
    try:
        remaining = rebuild_sale(sessions, stock, name)
    except InvalidSale as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"flashsale/{name} rebuilt from SQL: {remaining} units for sale")


OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@sale.command("status")
@click.argument("name")
@OUTPUT
def sale_status_cmd(name: str, output: str) -> None:
    """Print a sale's phase and stock."""
    from flashsale.sales import sale_status

    sessions, stock = _sessions_and_stock()
    with _reaching_storage():
        status = sale_status(sessions, stock, name)
    if status is None:
        raise click.ClickException(f"no sale named {name!r}")
    if output == "json":
        click.echo(json.dumps(status.as_dict(), indent=2))
        return
    figures = status.stock
    click.echo(
        "\n".join(
            [
                f"Name:    {status.name}",
                f"SKU:     {status.sku}",
                f"Phase:   {status.phase}",
                f"Starts:  {status.starts_at or '-'}",
                f"Ends:    {status.ends_at or '-'}",
                "Stock:",
                *(
                    f"  {label:<18}{value}"
                    for label, value in (
                        ("total", figures.total),
                        ("remaining", figures.remaining),
                        ("reserved", figures.reserved),
                        ("pending payment", figures.pending_payment),
                        ("paid", figures.paid),
                        ("expired", figures.expired),
                    )
                ),
            ]
        )
    )


@sale.command("list")
@OUTPUT
def sale_list(output: str) -> None:
    """List every sale with its phase and stock."""
    from flashsale.sales import sale_names, sale_status
    from flashsale.tables import render_table

    sessions, stock = _sessions_and_stock()
    with _reaching_storage():
        statuses = [s for n in sale_names(sessions) if (s := sale_status(sessions, stock, n))]
    if output == "json":
        click.echo(json.dumps([s.as_dict() for s in statuses], indent=2))
        return
    if not statuses:
        click.echo("no sales yet: flashsale sale apply -f FILE")
        return
    headers = ["NAME", "SKU", "PHASE", "TOTAL", "REMAINING", "RESERVED", "PENDING", "PAID"]
    rows = [
        [
            s.name,
            s.sku,
            s.phase,
            s.stock.total,
            s.stock.remaining,
            s.stock.reserved,
            s.stock.pending_payment,
            s.stock.paid,
        ]
        for s in statuses
    ]
    click.echo(render_table(headers, rows))


@main.command()
@click.option("--stock", default=200, show_default=True, help="Units for sale.")
@click.option("--shoppers", default=3000, show_default=True, help="First-wave shoppers.")
@click.option("--spammers", default=100, show_default=True, help="Bots clicking 20 times each.")
@click.option("--second-wave", default=600, show_default=True, help="Shoppers coming back.")
@click.option("--payment-timeout", default=5, show_default=True, help="Seconds to pay.")
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
    out: Path | None,
) -> None:
    """Run a whole flash sale on throwaway local servers and report on it.

    Exits non-zero if any invariant of the design fails."""
    from flashsale.demo import require_demo_extras

    require_demo_extras()  # one line naming what to install, not a traceback
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
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    logging.getLogger().setLevel(logging.WARNING)  # the progress bars tell the story
    console = Console()
    report = run_demo(plan, (out or Settings().data_dir / "demo").resolve(), console)
    show(report, console)
    sys.exit(0 if report.passed else 1)


@main.command()
@click.option("--port", default=8000, show_default=True, help="Port of the API.")
@click.option(
    "--api-workers", type=int, default=None, help="API processes (default: one per core, up to 4)."
)
def up(port: int, api_workers: int | None) -> None:
    """Run the whole platform locally in the foreground; Ctrl-C stops all of it.

    Without FLASHSALE_REDIS_URL / FLASHSALE_DATABASE_URL, starts its own Redis and
    PostgreSQL in FLASHSALE_DATA_DIR (default ./.flashsale), keeping data across runs."""
    from flashsale.embedded import ServerError
    from flashsale.local.platform import PlatformError
    from flashsale.local.up import run_up

    try:
        code = run_up(Settings(), port, api_workers)
    except (ServerError, PlatformError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


main.add_command(bench_command, name="bench")


if __name__ == "__main__":
    sys.exit(main())
