"""Redis key names. Every key of one sale segment carries the hash tag {<segment name>}
(the sale's name for its first segment, flashsale/stock/segments.py), so each script
touches one Redis Cluster slot. User-supplied parts come last and are length-prefixed
where two of them meet, so crafted names cannot make two keys collide."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SaleKeys:
    sale: str  # a segment name: the sale's own name for its first segment

    @property
    def prefix(self) -> str:
        return f"fs:{{{self.sale}}}:"

    @property
    def meta(self) -> str:
        return self.prefix + "meta"

    @property
    def stock(self) -> str:
        return self.prefix + "stock"

    @property
    def held(self) -> str:
        return self.prefix + "held"

    @property
    def outbox(self) -> str:
        return self.prefix + "outbox"

    @property
    def restored(self) -> str:
        return self.prefix + "restored"

    @property
    def loans(self) -> str:
        return self.prefix + "loans"

    @property
    def received(self) -> str:
        return self.prefix + "received"

    @property
    def admissions(self) -> str:
        """Shoppers of this segment a waiting room let in -> until when (ms)."""
        return self.prefix + "adm"

    @property
    def room_queue(self) -> str:
        return self.prefix + "room:queue"

    @property
    def room_admitted(self) -> str:
        return self.prefix + "room:admitted"

    @property
    def room_joined(self) -> str:
        return self.prefix + "room:joined"

    @property
    def room_expired(self) -> str:
        return self.prefix + "room:expired"

    @property
    def room_shopped(self) -> str:
        return self.prefix + "room:shopped"

    def rate(self, user: str) -> str:
        return f"{self.prefix}rl:{user}"

    def idempotency(self, user: str, key: str | None) -> str:
        if key is None:
            return self.prefix + "idem"
        return f"{self.prefix}idem:{len(user)}:{user}:{key}"

    def reservation(self, order_id: str) -> str:
        return f"{self.prefix}r:{order_id}"

    @property
    def pattern(self) -> str:
        """Glob matching every key of this sale (for clean-up)."""
        return self.prefix + "*"


def other_segments_pattern(sale: str) -> str:
    """Glob matching every key of the sale's segments but the first (flashsale/stock/
    segments.py names them `<sale>/<k>`)."""
    return f"fs:{{{sale}/*"
