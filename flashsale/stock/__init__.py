"""Stock in Redis: every key of a sale, every script that moves a unit, every read of them.
Nothing outside this package names a sale's key or holds its stock client.

Where each figure of a sale lives (every key in the sale's own hash slot) and what moves
it; every change is a script, so each step moves units between figures atomically:

    figure                        where                      raised by         lowered by
    units for sale                fs:{sale}:stock            load, restore,    reserve
                                                             release
    in flight to SQL ("reserved") fs:{sale}:meta inflight    reserve           ack, release
    in live orders                fs:{sale}:meta live        ack (stored)      restore
    units each shopper holds      fs:{sale}:held             reserve           ack (rejected),
                                                                               restore, release
    live units in SQL             sales.live_units           persist (insert)  reaper (expire)

At rest, units for sale + in flight + live == the sale's total. SQL's `live_units` is the
guard that makes overselling impossible even when Redis loses writes (flashsale/persist.py).

Modules: `keys` (the names), `scripts` (the one registry of Lua scripts), `calls` (what a
script call sends and answers), `hotpath` (AsyncStock: the API's purchases, batched) and
`store` (Stock: everything else)."""

from flashsale.stock.calls import (
    InvalidPurchase,
    Outcome,
    Purchase,
    ReserveResult,
    RoomLimits,
    SaleLimits,
    SoldInSql,
    StockLoadError,
)
from flashsale.stock.hotpath import AsyncStock, Publish
from flashsale.stock.reads import Backlog, SaleInRedis
from flashsale.stock.segments import home, sale_of, segment_name, segment_names, split
from flashsale.stock.store import Closed, Stock

__all__ = [
    "AsyncStock",
    "Backlog",
    "Closed",
    "InvalidPurchase",
    "Outcome",
    "Publish",
    "Purchase",
    "ReserveResult",
    "RoomLimits",
    "SaleInRedis",
    "SaleLimits",
    "SoldInSql",
    "Stock",
    "StockLoadError",
    "home",
    "sale_of",
    "segment_name",
    "segment_names",
    "split",
]
