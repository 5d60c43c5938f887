"""Segments: one sale's stock spread over N hash slots, so that one hot sale spreads over
up to N Redis Cluster masters.

Segment k of sale `s` is named `s` for k = 0 (a sale of one segment keeps the keys it
always had) and `s/k` otherwise; its keys carry that name as their hash tag. A sale name
never holds a slash (Kubernetes names), so no segment name is another sale's.

Placement: cut the 16,384 hash slots into N equal ranges; segment 0 (the sale's own name)
falls in one of them, and segment k's name is `s/k`, or `s/k.j` for the smallest j, whose
slot lies near the middle of the k-th range after it. Clusters share their slots among
their masters in even, contiguous ranges (`redis-cli --cluster create`, managed clusters
alike), so N segments land on N different masters when there are N masters, and evenly
on fewer masters when N is a multiple of their number; names by plain hash put two of
three segments on one master as often as not.

Every shopper has one home segment, from a hash of their user id that reserve.lua
computes too: all of a shopper's state (rate bucket, units held, idempotency keys,
reservations) lives there, so the per-user limit and the rate limit are decided in one
script as before. Units move between segments by loans (docs/segments.md)."""

from __future__ import annotations

import binascii
import hashlib
from functools import lru_cache

from flashsale.spec import MAX_SEGMENTS

__all__ = [
    "MAX_SEGMENTS",
    "home",
    "sale_of",
    "segment_name",
    "segment_names",
    "slot_of",
    "split",
]
_SEP = "/"
SLOTS = 16384
# How many names a segment may try before it settles for its plain one (never reached:
# the window around its target holds one slot in 4 * N, so some 4 * N names find it).
_TRIES = 100_000


def slot_of(tag: str) -> int:
    """The Redis Cluster hash slot of keys with this hash tag (CRC16-XMODEM mod 16384)."""
    return binascii.crc_hqx(tag.encode(), 0) % SLOTS


def segment_name(sale: str, index: int, count: int) -> str:
    return sale if index == 0 else _placed(sale, index, count)


def target_slot(sale: str, index: int, count: int) -> int:
    """The middle of the slot range segment `index` aims at."""
    width = SLOTS / count
    first = int(slot_of(sale) // width)
    return int(((first + index) % count + 0.5) * width)


@lru_cache(maxsize=65536)
def _placed(sale: str, index: int, count: int) -> str:
    target = target_slot(sale, index, count)
    tolerance = max(1, SLOTS // (8 * count))
    plain = f"{sale}{_SEP}{index}"
    for j in range(_TRIES):
        name = f"{plain}.{j}" if j else plain
        if abs(slot_of(name) - target) <= tolerance:
            return name
    return plain


def segment_names(sale: str, count: int) -> list[str]:
    return [segment_name(sale, k, count) for k in range(count)]


def split(name: str) -> tuple[str, int]:
    """(sale, segment index) of a segment name; a plain sale name is its segment 0."""
    sale, sep, rest = name.partition(_SEP)
    if not sep:
        return name, 0
    index, dot, tries = rest.partition(".")
    if (
        not index.isdigit()
        or index != str(int(index))
        or not 0 < int(index) < MAX_SEGMENTS
        or (dot and (not tries.isdigit() or tries != str(int(tries)) or int(tries) == 0))
    ):
        raise ValueError(f"{name!r} names no segment")
    return sale, int(index)


def sale_of(name: str) -> str:
    return split(name)[0]


def home(user: str, count: int) -> int:
    """The segment holding `user`'s state in a sale of `count` segments: the first 32 bits
    of SHA-1 of the id's UTF-8 bytes, modulo `count` (reserve.lua computes the same with
    redis.sha1hex, and refuses a purchase sent to another segment)."""
    if count <= 1:
        return 0
    # surrogatepass: an id that cannot be sent still gets a home, and fails on its own
    # when it is encoded for Redis (InvalidPurchase), never here.
    raw = user.encode("utf-8", "surrogatepass")
    return int(hashlib.sha1(raw).hexdigest()[:8], 16) % count
