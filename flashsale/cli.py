"""`flashsale`: one entry point for every component."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from flashsale.settings import Settings, get_settings
from flashsale.stock import Stock

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def _settings() -> Settings:
    return get_settings()


def _sessions_and_stock() -> tuple[sessionmaker[Session], Stock]:
    import redis

    from flashsale.db.engine import session_factory

    settings = _settings()
    return (
        session_factory(settings.require_database_url()),
        Stock(redis.Redis.from_url(settings.require_redis_url())),
    )


@click.group()
@click.option("--log-level", default="INFO", show_default=True)
def main(log_level: str) -> None:
    """FlashSale: flash sales that never oversell."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", type=int, default=None, help="Server processes (FLASHSALE_API_WORKERS).")
def api(host: str, port: int, workers: int | None) -> None:
    """Serve the HTTP API."""
    import uvicorn

    settings = _settings()
    try:
        settings.require_jwt_secret()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    processes = workers or settings.api_workers
    metrics_dir = None
    if processes > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each server process writes its metrics here; /metrics adds them up.
        metrics_dir = tempfile.mkdtemp(prefix="flashsale-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "flashsale.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=processes,
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=10,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@main.command()
@click.option("--concurrency", type=int, default=None)
@click.option("--pool", default="prefork", show_default=True)
def worker(concurrency: int | None, pool: str) -> None:
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
            "INFO",
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


def _repeat(every: float | None, step: Any) -> None:
    while True:
        step()
        if not every:
            return
        time.sleep(every)


@main.command()
@click.option("--every", type=float, default=None, help="Repeat every N seconds.")
def reap(every: float | None) -> None:
    """Expire unpaid orders and return their units to stock."""
    from flashsale.reaper import reap as run_reap

    sessions, stock = _sessions_and_stock()
    batch = _settings().reap_batch_size

    def step() -> None:
        report = run_reap(sessions, stock, batch)
        click.echo(f"expired {report.expired} orders, returned {report.restored} to stock")

    _repeat(every, step)


@main.command()
@click.option("--every", type=float, default=None, help="Repeat every N seconds.")
@click.option(
    "--older-than", type=float, default=None, help="Seconds (FLASHSALE_SWEEP_AFTER_SECONDS)."
)
def sweep(every: float | None, older_than: float | None) -> None:
    """Re-publish reservations that no worker has persisted in time."""
    import redis

    from flashsale.sweeper import sweep as run_sweep

    settings = _settings()
    sessions, stock = _sessions_and_stock()
    broker = redis.Redis.from_url(settings.effective_broker_url or settings.require_redis_url())
    age = older_than if older_than is not None else settings.sweep_after_seconds

    def step() -> None:
        count = run_sweep(sessions, stock.client, broker, settings.queue, age)
        click.echo(f"re-published {count} reservations")

    _repeat(every, step)


@main.command()
@click.argument("user")
@click.option("--ttl", type=int, default=3600, show_default=True, help="Seconds.")
def token(user: str, ttl: int) -> None:
    """Print a JWT for USER, signed with FLASHSALE_JWT_SECRET."""
    from flashsale.api.auth import issue_token

    try:
        secret = _settings().require_jwt_secret()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(issue_token(secret, user, ttl))


@main.group()
def sale() -> None:
    """Create, update and inspect sales."""


@sale.command("apply")
@click.option("-f", "--filename", type=click.Path(exists=True, path_type=Path), required=True)
def sale_apply(filename: Path) -> None:
    """Create or update sales from a FlashSale YAML file."""
    from pydantic import ValidationError

    from flashsale.sales import InvalidSale, apply_sale
    from flashsale.spec import SaleSpec

    docs = [d for d in yaml.safe_load_all(filename.read_text()) if d]
    parsed = []
    for doc in docs:
        name = (doc.get("metadata") or {}).get("name", "")
        try:
            parsed.append((name, SaleSpec.model_validate(doc.get("spec") or {})))
        except ValidationError as exc:
            raise click.ClickException(f"{filename}: sale {name!r}: {exc}") from None
    sessions, stock = _sessions_and_stock()
    for name, spec in parsed:
        try:
            remaining = apply_sale(sessions, stock, name, spec)
        except InvalidSale as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"flashsale/{name} applied: {remaining} of {spec.stock} units for sale")


@sale.command("status")
@click.argument("name")
def sale_status_cmd(name: str) -> None:
    """Print a sale's phase and stock."""
    from flashsale.sales import sale_status

    sessions, stock = _sessions_and_stock()
    status = sale_status(sessions, stock, name)
    if status is None:
        raise click.ClickException(f"no sale named {name!r}")
    click.echo(json.dumps(status.as_dict(), indent=2))


if __name__ == "__main__":
    sys.exit(main())
