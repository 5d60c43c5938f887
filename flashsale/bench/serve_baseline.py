"""Serve the SQL row-lock baseline (`flashsale/bench/sql_baseline.py`) with the API's own
server function, so both run under the same server and worker count."""

from __future__ import annotations

import click

from flashsale.api.server import SERVERS, serve

BASELINE_FACTORY = "flashsale.bench.sql_baseline:create_app"


@click.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, required=True)
@click.option("--workers", type=int, default=1)
@click.option("--server", type=click.Choice(SERVERS), default=SERVERS[0])
def main(host: str, port: int, workers: int, server: str) -> None:
    serve(BASELINE_FACTORY, host, port, workers, server)


if __name__ == "__main__":
    main()
