"""How a sale's stock is laid out over its segments: each segment's share of a new (or
reloaded) sale, and where a change of the sale's stock lands."""

from __future__ import annotations

from flashsale.stock.calls import SaleLimits, SoldInSql, StockLoadError
from flashsale.stock.segments import home


def shares(units: int, count: int) -> list[int]:
    """`units` split over `count` segments as evenly as whole units go."""
    return [units // count + (1 if k < units % count else 0) for k in range(count)]


def new_sale(
    limits: SaleLimits, sold: SoldInSql
) -> tuple[list[int], list[int], list[list[tuple[str, int]]]]:
    """Each segment's total, live units and shoppers' holdings of a new (or rebuilt)
    sale: shoppers' live units stay in their home segments, the unsold units are
    spread evenly."""
    n = limits.segments
    held: list[list[tuple[str, int]]] = [[] for _ in range(n)]
    for user, units in sold.held:
        held[home(user, n)].append((user, units))
    live = [sum(units for _, units in pairs) for pairs in held]
    if n == 1:
        live = [sold.live_units]
    unsold = max(0, limits.total - sum(live))
    if limits.total < sum(live):  # load.lua refuses it and says why
        return [limits.total] + [0] * (n - 1), live, held
    return [s + v for s, v in zip(shares(unsold, n), live, strict=True)], live, held


def changed_totals(sale: str, total: int, loaded: list[int | None], stocks: list[int]) -> list[int]:
    """Each segment's new total for a sale whose stock goes from sum(loaded) to `total`:
    added units spread evenly, removed units taken where units are unsold."""
    current = [t or 0 for t in loaded]
    delta = total - sum(current)
    if delta >= 0:
        return [t + s for t, s in zip(current, shares(delta, len(current)), strict=True)]
    if sum(stocks) < -delta:
        raise StockLoadError(
            f"sale {sale!r}: stock cannot drop to {total}: "
            f"{sum(current) - sum(stocks)} units are already taken"
        )
    targets, left = list(current), -delta
    for k in sorted(range(len(current)), key=lambda k: -stocks[k]):
        cut = min(left, stocks[k])
        targets[k] -= cut
        left -= cut
    return targets
