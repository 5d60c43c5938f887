"""Shoppers' requests over HTTP."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.conftest import auth


async def buy(client: httpx.AsyncClient, sale: str, user: str, **kwargs: object) -> httpx.Response:
    """POST a reservation as `user`; `headers` are added to the user's token."""
    headers = auth(user) | dict(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
    return await client.post(f"/v1/sales/{sale}/reservations", headers=headers, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


async def crowd(base: str, sale: str, users: list[str], at_once: int = 500) -> list[Reply]:
    """One purchase per user, `at_once` of them in the same moment over plain sockets
    (connections opened first, then every request written at once): a crowd at the
    speed of the API, not of a client library."""
    url = urlsplit(base)
    replies: list[Reply] = []
    for first in range(0, len(users), at_once):
        group = users[first : first + at_once]
        connections = await asyncio.gather(
            *(asyncio.open_connection(url.hostname, url.port) for _ in group)
        )
        try:
            for (_, writer), user in zip(connections, group, strict=True):
                request = (
                    f"POST /v1/sales/{sale}/reservations HTTP/1.1\r\nHost: {url.netloc}\r\n"
                    f"Authorization: {auth(user)['Authorization']}\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                writer.write(request.encode())
            raw = await asyncio.gather(*(reader.read() for reader, _ in connections))
        finally:
            for _, writer in connections:
                writer.close()
        replies += [_reply(r) for r in raw]
    return replies


def _reply(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    return Reply(int(lines[0].split()[1]), headers, json.loads(body) if body else {})
