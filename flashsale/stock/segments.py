"""Segments: one sale's stock spread over N hash slots, so that one hot sale spreads over
up to N Redis Cluster masters.

Segment k of sale `s` is named `s` for k = 0 (a sale of one segment keeps the keys it
always had) and `s/k` otherwise; its keys carry that name as their hash tag. A sale name
never holds a slash (Kubernetes names), so no segment name is another sale's.

Every shopper has one home segment, from a hash of their user id that reserve.lua
computes too: all of a shopper's state (rate bucket, units held, idempotency keys,
reservations) lives there, so the per-user limit and the rate limit are decided in one
script as before. Units move between segments by loans (docs/segments.md)."""

from __future__ import annotations

import hashlib

from flashsale.spec import MAX_SEGMENTS

__all__ = ["MAX_SEGMENTS", "home", "sale_of", "segment_name", "segment_names", "split"]
_SEP = "/"


def segment_name(sale: str, index: int) -> str:
    return sale if index == 0 else f"{sale}{_SEP}{index}"


def segment_names(sale: str, count: int) -> list[str]:
    return [segment_name(sale, k) for k in range(count)]


def split(name: str) -> tuple[str, int]:
    """(sale, segment index) of a segment name; a plain sale name is its segment 0."""
    sale, sep, index = name.partition(_SEP)
    if not sep:
        return name, 0
    if not index.isdigit() or index != str(int(index)) or not 0 < int(index) < MAX_SEGMENTS:
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
