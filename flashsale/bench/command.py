"""`flashsale bench`: the command line of the benchmark runner."""

from __future__ import annotations

from pathlib import Path

import click

from flashsale.api.server import SERVERS


@click.command()
@click.option("--quick", is_flag=True, help="Smoke run: one short run per figure, tiny backlog.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench/results"),
    show_default=True,
    help="Folder for the JSON, Markdown and PNG results.",
)
@click.option("--runs", type=click.IntRange(min=1), default=None, help="Runs per figure [3].")
@click.option("--seconds", type=click.FloatRange(min=1), default=None, help="Seconds per run [6].")
@click.option("--connections", default=None, help="Comma-separated concurrency levels [64,256].")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="API processes [1].")
@click.option(
    "--server",
    "servers",
    type=click.Choice(SERVERS),
    multiple=True,
    help="ASGI servers to compare [both]; the ratios use granian when it is measured.",
)
@click.option(
    "--no-cluster",
    is_flag=True,
    help="Leave out the cluster series (a local Redis Cluster of 3 masters).",
)
def bench(
    quick: bool,
    out: Path,
    runs: int | None,
    seconds: float | None,
    connections: str | None,
    workers: int | None,
    servers: tuple[str, ...],
    no_cluster: bool,
) -> None:
    """Benchmark the reservation path against the SQL row-lock design and the framework
    and Redis ceilings, in one run, on this machine."""
    from flashsale.bench.run import Options
    from flashsale.bench.runner import run_benchmark
    from flashsale.bench.wrk import ToolMissing

    options = Options.quick_run(out) if quick else Options(out_dir=out)
    if runs:
        options.runs = options.drain_runs = runs
    if seconds:
        options.seconds = seconds
    if workers:
        options.workers = workers
    if servers:
        options.servers = servers
    options.cluster = not no_cluster
    if connections:
        try:
            options.connections = tuple(int(c) for c in connections.split(","))
        except ValueError:
            raise click.BadParameter("e.g. 64,256", param_hint="--connections") from None
    try:
        run_benchmark(options, log=lambda line: click.echo(line))
    except ToolMissing as exc:
        raise click.ClickException(str(exc)) from None
