"""What the demo's sale and crowd look like."""

from __future__ import annotations

from dataclasses import dataclass

from flashsale.spec import MAX_SEGMENTS


@dataclass(frozen=True)
class DemoPlan:
    stock: int = 200
    per_user_limit: int = 1
    payment_timeout_seconds: int = 5
    rate_per_second: float = 2.0  # per user
    burst: int = 3
    shoppers: int = 3000  # first wave: one click each, arriving over `arrival_seconds`
    spammers: int = 100  # first wave: `spam_clicks` clicks each, as fast as they can
    spam_clicks: int = 20
    arrival_seconds: float = 3.0
    never_pay: float = 0.3  # share of first-wave buyers who walk away without paying
    second_wave: int = 600  # shoppers who come back for the returned units; they all pay
    connections: int = 128  # HTTP connections the crowd shares
    segments: int = 1  # the sale's spec.segments: its stock over this many hash slots
    # With a waiting room (flashsale/demo/room.py), the crowd joins and polls before it
    # buys; the spammers skip the queue and click "Buy" when the sale starts.
    waiting_room: bool = False
    room_lead_seconds: float = 2.0  # the room opens this long before the sale starts
    order: str = "draw"  # draw | fifo
    admit_per_second: float = 20.0
    shopping_seconds: int = 4  # an admission unused this long expires
    overbook: float = 1.5
    walk_away: float = 0.15  # share of admitted shoppers who never click "Buy"
    # The demo's clock is fast: polls at most this far apart (the room asks for up to 20 s
    # far back). Each poll costs the API about 0.6 ms of CPU (BENCHMARKS.md): 3,600
    # shoppers polling every 2 s would take most of a core of the demo's machine.
    poll_cap_seconds: float = 4.0

    def __post_init__(self) -> None:
        if self.stock < 1 or self.shoppers < 1:
            raise ValueError("a demo needs stock and shoppers")
        if not 0 <= self.never_pay <= 1:
            raise ValueError("never_pay is a share between 0 and 1")
        if not 1 <= self.segments <= MAX_SEGMENTS:
            raise ValueError(f"segments is between 1 and {MAX_SEGMENTS}")
        if not 0 <= self.walk_away < 1:
            raise ValueError("walk_away is a share between 0 and 1")
        if self.admit_per_second <= 0 or self.overbook <= 0 or self.shopping_seconds < 1:
            raise ValueError("a waiting room admits, overbooks and lets shop above zero")
        if self.order not in ("draw", "fifo"):
            raise ValueError("order is draw or fifo")
