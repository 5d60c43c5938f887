"""The one registry of Lua scripts: every `flashsale/lua/*.lua` file, read once, registered
with a client once, and called through redis-py's Script objects (which send the source
again after NOSCRIPT, when Redis restarted or failed over and lost its script cache)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Any, Generic, TypeVar

S = TypeVar("S")


@cache
def lua_source(name: str) -> str:
    return resources.files("flashsale").joinpath("lua", f"{name}.lua").read_text()


def script_files() -> set[str]:
    """The names of the scripts shipped with the package."""
    folder = resources.files("flashsale").joinpath("lua")
    return {p.name.removesuffix(".lua") for p in folder.iterdir() if p.name.endswith(".lua")}


@dataclass(frozen=True, slots=True)
class Scripts(Generic[S]):
    """Each script, registered with one client (`Script`, or `AsyncScript` for an
    asyncio client). Each file's header documents its KEYS, ARGV and answer."""

    reserve: S  # decide purchases: stock, per-user limit, rate limit, idempotency
    load: S  # create or update a sale, rebuild it from SQL's figures
    ack: S  # reservations stored in SQL leave the outbox
    restore: S  # expired orders give their units back, once
    release: S  # dead letters give their units back, once
    close: S  # a sale takes no more reservations
    lend: S  # units leave one segment for another, as a loan
    settle: S  # loans the borrowing segment credited are forgotten
    queue: S  # a shopper joins or polls a waiting room; its gate advances
    bought: S  # admitted shoppers who bought leave the waiting room's budget

    @classmethod
    def register(cls, client: Any) -> Scripts[Any]:
        return cls(**{f.name: client.register_script(lua_source(f.name)) for f in fields(cls)})

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}
