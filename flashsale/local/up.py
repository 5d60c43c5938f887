"""`flashsale up`: the local platform in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from flashsale.local.platform import LocalPlatform
from flashsale.settings import Settings

COLOURS = {
    "api": "cyan",
    "worker": "green",
    "reaper": "magenta",
    "sweeper": "yellow",
    "up": "red",
}
_print_lock = threading.Lock()


def print_line(name: str, line: str) -> None:
    prefix = click.style(f"{name:<7} |", fg=COLOURS.get(name, "white"))
    with _print_lock:  # one pump thread per component: keep lines whole
        click.echo(f"{prefix} {line}")


def banner(platform: LocalPlatform) -> str:
    redis = [f"  Redis        {platform.redis_url}"]
    if platform.servers.cluster:
        masters = platform.servers.cluster.masters
        redis = [
            f"  Redis        a cluster of {masters} masters, each with a replica",
            f"               {platform.redis_url}",
        ]
    if platform.broker_url:
        redis.append(f"  Broker       {platform.broker_url}")
    return "\n".join(
        [
            "",
            f"FlashSale is up in {platform.data_dir}",
            f"  API          {platform.api_url}   (docs: {platform.api_url}/docs)",
            *redis,
            f"  PostgreSQL   {platform.database_url}",
            "",
            "In another terminal, from this folder:",
            "  flashsale sale apply -f examples/tv-drop.yaml",
            "  flashsale sale list",
            "  TOKEN=$(flashsale token alice)",
            f'  curl -X POST -H "Authorization: Bearer $TOKEN" {platform.api_url}'
            "/v1/sales/tv-drop/reservations",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


def run_up(settings: Settings, port: int, api_workers: int | None, redis_cluster: int = 0) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    platform = LocalPlatform(
        settings, port, api_workers, sink=print_line, redis_cluster=redis_cluster
    )
    click.echo(f"starting FlashSale in {platform.data_dir} ...")
    with platform:
        click.echo(banner(platform))
        platform.run_until(stop)  # components that exit meanwhile are restarted
        click.echo("stopping FlashSale ...")
    click.echo("stopped")
    return 0
