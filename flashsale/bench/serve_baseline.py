"""Serve the SQL row-lock baseline (`bench/sql_baseline.py`) with the API's own server
function, so both run under the same server and worker count."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from flashsale.api.server import SERVERS, serve

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
BASELINE_FACTORY = "sql_baseline:create_app"


def baseline_on_path() -> None:
    """Make `bench/` importable here and in server worker processes."""
    if not (BENCH_DIR / "sql_baseline.py").exists():
        raise click.ClickException(
            f"{BENCH_DIR / 'sql_baseline.py'} not found: run the benchmark from a source "
            "checkout (pip install -e .)"
        )
    sys.path.insert(0, str(BENCH_DIR))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
    )


@click.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, required=True)
@click.option("--workers", type=int, default=1)
@click.option("--server", type=click.Choice(SERVERS), default=SERVERS[0])
def main(host: str, port: int, workers: int, server: str) -> None:
    baseline_on_path()
    serve(BASELINE_FACTORY, host, port, workers, server)


if __name__ == "__main__":
    main()
