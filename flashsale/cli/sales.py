"""`flashsale sale ...`: create, update, rebuild and inspect sales."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flashsale.cli import common
from flashsale.cli.group import main


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
    sessions, stock = common.sessions_and_stock()
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

    sessions, stock = common.sessions_and_stock()
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

    sessions, stock = common.sessions_and_stock()
    with common.reaching_storage():
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

    sessions, stock = common.sessions_and_stock()
    with common.reaching_storage():
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
