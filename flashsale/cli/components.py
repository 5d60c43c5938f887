"""The platform's components, each alone, as the containers run them; and `token`."""

from __future__ import annotations

from collections.abc import Callable

import click

from flashsale.cli import common
from flashsale.cli.group import main


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

    settings = common.component_settings()
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
    settings = common.component_settings()
    try:
        settings.require_broker_url()  # Celery would otherwise fall back to its own default
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    from flashsale.worker.app import app

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

    upgrade(common.settings().require_database_url())
    click.echo("database is up to date")


def _repeat(component: str, every: float | None, step: Callable[[], None]) -> None:
    """Run `step` once (recorded, and exit 1 if it failed), or every `every` seconds
    through outages until a signal stops the process."""
    from flashsale import clients
    from flashsale.loops import describe, run_every, run_step

    recorder = clients.stock_redis(common.component_settings())
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

    sessions, stock = common.sessions_and_stock()
    batch = common.settings().reap_batch_size

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

    settings = common.component_settings()
    sessions, stock = common.sessions_and_stock()
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

    # With a `flashsale up` running in the data folder, its servers.
    settings = common.component_settings()
    try:
        settings.require_redis_url()
        settings.require_database_url()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    run(namespace=namespace, liveness=liveness, common=settings)


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
    settings = common.settings()
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
