"""Taking a sale out of Redis: close it, then remove its keys. Orders stay in SQL.

Closing goes through a Lua script like every other change to a sale in Redis; removing
is SCAN + UNLINK over the sale's hash tag, in batches, so a big sale never blocks Redis."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from flashsale.keys import SaleKeys
from flashsale.stock import lua_source

UNLINK_BATCH = 500


@dataclass(frozen=True, slots=True)
class Closed:
    existed: bool
    waiting: int  # reservations still on their way to SQL


class Teardown:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._close = client.register_script(lua_source("close"))

    def close(self, sale: str) -> Closed:
        """No reservation is accepted after this returns; tells what is still in flight."""
        keys = SaleKeys(sale)
        existed, waiting = self._close(keys=[keys.meta, keys.outbox])
        return Closed(existed=bool(int(existed)), waiting=int(waiting))

    def remove_keys(self, sale: str) -> int:
        """Unlink every `fs:{sale}:*` key; returns how many were removed."""
        removed = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=SaleKeys(sale).pattern, count=UNLINK_BATCH):
            batch.append(key)
            if len(batch) >= UNLINK_BATCH:
                removed += int(self.client.unlink(*batch))
                batch.clear()
        if batch:
            removed += int(self.client.unlink(*batch))
        return removed
