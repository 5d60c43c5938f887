"""`flashsale sale ...`: create, update, rebuild and inspect sales."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


class NoDraw(click.ClickException):
    """Nothing to show or check: the sale has no draw, or its seed is not revealed yet."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Entrant:
    position: int  # 1 = first in the draw's order
    user: str
    place: int  # below DRAW_PLACES: the draw's; else DRAW_PLACES + arrival number

    def as_dict(self, draw_places: int) -> dict[str, object]:
        drawn = self.place < draw_places
        return {
            "position": self.position,
            "user": self.user,
            "place": self.place,
            "drawn": drawn,
            **({} if drawn else {"arrival": self.place - draw_places}),
        }


def draw_order(entrants: list[tuple[str, int]]) -> list[Entrant]:
    """The queue's order: by place, then by user id (as Redis orders equal scores)."""
    ordered = sorted(entrants, key=lambda entrant: (entrant[1], entrant[0]))
    return [Entrant(i, user, place) for i, (user, place) in enumerate(ordered, start=1)]


def draw_differences(seed: str, commitment: str, entrants: list[Entrant]) -> list[str]:
    """What does not hold: the seed hashes to the commitment, every place below the draw's
    bound is the one the seed gives its shopper, and no two later arrivals share an arrival
    number. A later arrival's number is not the seed's to check: it is when they came."""
    import hashlib

    from flashsale.stock.room import DRAW_PLACES, draw_place

    found = []
    digest = hashlib.sha256(seed.encode()).hexdigest()
    if digest != commitment:
        found.append(f"the seed's SHA-256 is {digest}, not the commitment {commitment}")
    arrivals: dict[int, str] = {}
    for entrant in entrants:
        if entrant.place >= DRAW_PLACES:
            other = arrivals.setdefault(entrant.place, entrant.user)
            if other != entrant.user:
                found.append(
                    f"{entrant.user!r} and {other!r} share arrival number "
                    f"{entrant.place - DRAW_PLACES}"
                )
            continue
        expected = draw_place(seed, entrant.user)
        if entrant.place != expected:
            found.append(f"{entrant.user!r} has place {entrant.place}; the seed gives {expected}")
    return found


@sale.command("draw")
@click.argument("name")
@click.option(
    "--verify",
    is_flag=True,
    help="Recompute every drawn place from the revealed seed and check it and the "
    "commitment; exit 1 on any difference.",
)
@click.option(
    "--commitment",
    metavar="SHA256",
    help="The commitment published before the start (status.waitingRoom.drawCommitment) "
    "to check the seed against; default: the one the sale holds now.",
)
@OUTPUT
def sale_draw(name: str, verify: bool, commitment: str | None, output: str) -> None:
    """Print a sale's draw: its commitment, its seed once the sale has started, and the
    entrants in the draw's order (the draw's places first, then later arrivals in arrival
    order).

    Before the start only the commitment and the number of entrants are shown: the order
    follows from the seed, which is secret until then. Exits 2 when the sale has no draw,
    or (with --verify) when its seed is not revealed yet."""
    from flashsale.stock.room import DRAW_PLACES
    from flashsale.tables import render_table

    _, stock = common.sessions_and_stock()
    with common.reaching_storage():
        if not stock.has_sale(name):
            raise click.ClickException(f"no sale named {name!r}")
        figures = stock.room_figures(name)
        # Read after the figures: every shopper the revealed seed placed is in.
        _, joined = stock.draw_entrants(name)
    if figures is None:
        raise NoDraw(f"sale {name!r} has no waiting room, so no draw")
    if figures.draw_commitment is None:
        raise NoDraw(f"sale {name!r} queues in arrival order (order: fifo): it has no draw")
    published = (commitment or figures.draw_commitment).strip().lower()
    seed = figures.draw_seed
    if seed is None:
        if verify:
            raise NoDraw(
                f"the draw of {name!r} is not revealed yet: its seed is published when the "
                f"sale starts (commitment {figures.draw_commitment}); verify it then"
            )
        if output == "json":
            document = {
                "sale": name,
                "commitment": figures.draw_commitment,
                "seed": None,
                "entrants": len(joined),
            }
            click.echo(json.dumps(document, indent=2))
            return
        click.echo(
            "\n".join(
                [
                    f"Sale:        {name}",
                    f"Commitment:  {figures.draw_commitment}",
                    "Seed:        not revealed until the sale starts",
                    f"Entrants:    {len(joined)} (their order follows from the seed)",
                ]
            )
        )
        return
    entrants = draw_order(joined)
    drawn = sum(1 for e in entrants if e.place < DRAW_PLACES)
    differences = draw_differences(seed, published, entrants) if verify else []
    if output == "json":
        result: dict[str, object] = {
            "sale": name,
            "commitment": published,
            "seed": seed,
            "entrants": [e.as_dict(DRAW_PLACES) for e in entrants],
        }
        if verify:
            result["verified"] = not differences
            result["differences"] = differences
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        click.echo(
            "\n".join(
                [
                    f"Sale:        {name}",
                    f"Commitment:  {published}",
                    f"Seed:        {seed}",
                    f"Entrants:    {len(entrants)} ({drawn} in the draw, "
                    f"{len(entrants) - drawn} after the start)",
                ]
            )
        )
        if verify:
            for line in differences:
                click.echo(f"DIFFERS: {line}")
            click.echo(
                f"FAILED: {len(differences)} difference{'s' if len(differences) > 1 else ''}"
                if differences
                else f"OK: the seed matches the commitment and gives all {drawn} drawn places"
            )
        elif entrants:
            rows = [
                [
                    e.position,
                    e.user,
                    e.place if e.place < DRAW_PLACES else f"arrival {e.place - DRAW_PLACES}",
                ]
                for e in entrants
            ]
            click.echo("")
            click.echo(render_table(["POSITION", "USER", "PLACE"], rows))
    if differences:
        raise click.exceptions.Exit(1)
