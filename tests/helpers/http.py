"""Shoppers' requests over HTTP."""

from __future__ import annotations

import httpx

from tests.conftest import auth


async def buy(client: httpx.AsyncClient, sale: str, user: str, **kwargs: object) -> httpx.Response:
    """POST a reservation as `user`; `headers` are added to the user's token."""
    headers = auth(user) | dict(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
    return await client.post(f"/v1/sales/{sale}/reservations", headers=headers, **kwargs)  # type: ignore[arg-type]
