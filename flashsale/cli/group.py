"""The `flashsale` command group; each module of this package adds its commands to it."""

from __future__ import annotations

import logging

import click


@click.group()
@click.option("--log-level", default="INFO", show_default=True)
def main(log_level: str) -> None:
    """FlashSale: flash sales that never oversell."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for chatty in ("httpx", "alembic.runtime.plugins"):  # one line per request or plugin
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.root.level))
