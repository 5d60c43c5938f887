"""A short-lived, per-process memory of "this sale is sold out".

Once a sale is sold out, every late click would cost a Redis round trip to hear the same
answer. After Redis has said `sold_out` for some quantity, this process answers it
locally for requests of at least that quantity, for at most `ttl` seconds from that
answer. The deadline is never pushed back while the flag stands, so units that come back
(an expired order, a raised stock) are offered again at most `ttl` seconds later."""

from __future__ import annotations

import time


class SoldOutFlags:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        # sale -> (monotonic deadline, smallest quantity Redis refused as sold out)
        self._flags: dict[str, tuple[float, int]] = {}

    def refuses(self, sale: str, quantity: int) -> bool:
        """True when Redis said, less than `ttl` ago, that `quantity` units are not there."""
        flag = self._flags.get(sale)
        if flag is None:
            return False
        deadline, smallest = flag
        if time.monotonic() >= deadline:
            del self._flags[sale]
            return False
        # Stock was below `smallest`, so any larger request was refused as well; a smaller
        # one may still fit and must ask Redis.
        return quantity >= smallest

    def remember(self, sale: str, quantity: int) -> None:
        """Redis answered sold_out to a request for `quantity` units."""
        if self.ttl <= 0:
            return
        now = time.monotonic()
        flag = self._flags.get(sale)
        if flag is not None and flag[0] > now:
            self._flags[sale] = (flag[0], min(flag[1], quantity))
        else:
            self._flags[sale] = (now + self.ttl, quantity)

    def forget(self, sale: str) -> None:
        """Redis accepted a purchase: the sale is not sold out (any more)."""
        self._flags.pop(sale, None)
