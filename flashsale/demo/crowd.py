"""Shoppers over real HTTP: each click and payment is recorded with its outcome and time."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from flashsale.api.auth import issue_token


@dataclass(frozen=True, slots=True)
class Click:
    at: float  # seconds since the demo started
    wave: int
    user: str
    outcome: str  # "accepted" or the error code the API answered
    status: int
    latency: float
    order_id: str | None


@dataclass
class CrowdLog:
    started: float = field(default_factory=time.monotonic)
    clicks: list[Click] = field(default_factory=list)
    payments: Counter[str] = field(default_factory=Counter)  # outcome -> count
    paid_orders: set[str] = field(default_factory=set)

    def now(self) -> float:
        return time.monotonic() - self.started

    def accepted(self) -> list[Click]:
        return [c for c in self.clicks if c.outcome == "accepted"]

    def outcomes(self) -> Counter[str]:
        return Counter(c.outcome for c in self.clicks)


class Crowd:
    def __init__(self, base_url: str, sale: str, secret: str, connections: int) -> None:
        self.base_url = base_url
        self.sale = sale
        self.secret = secret
        self.connections = connections
        self.log = CrowdLog()
        self._tokens: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Crowd:
        self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session:
            await self._session.close()

    def _open(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.connections)
        timeout = aiohttp.ClientTimeout(total=30)
        self._session = aiohttp.ClientSession(self.base_url, connector=connector, timeout=timeout)

    async def reconnect(self, base_url: str) -> None:
        """Talk to another server from now on (the old one died or moved)."""
        if self._session:
            await self._session.close()
        self.base_url = base_url
        self._open()

    def _auth(self, user: str) -> dict[str, str]:
        token = self._tokens.get(user)
        if token is None:
            token = self._tokens[user] = issue_token(self.secret, user, 3600)
        return {"Authorization": f"Bearer {token}"}

    async def click(self, wave: int, user: str, key: str) -> Click:
        """One press of "Buy"; the idempotency key makes a retried press safe."""
        assert self._session is not None
        headers = self._auth(user) | {"Idempotency-Key": key}
        began = time.monotonic()
        try:
            async with self._session.post(
                f"/v1/sales/{self.sale}/reservations", json={"quantity": 1}, headers=headers
            ) as answer:
                body = await answer.json(content_type=None)
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            body, status = {"error": f"client:{type(exc).__name__}"}, 0
        latency = time.monotonic() - began
        accepted = status == 202
        click = Click(
            at=self.log.now(),
            wave=wave,
            user=user,
            outcome="accepted" if accepted else str(body.get("error", f"http_{status}")),
            status=status,
            latency=latency,
            order_id=body.get("order_id") if accepted else None,
        )
        self.log.clicks.append(click)
        return click

    async def pay(self, user: str, order_id: str) -> None:
        assert self._session is not None
        async with self._session.post(
            f"/v1/orders/{order_id}/payment", headers=self._auth(user)
        ) as answer:
            body = await answer.json(content_type=None)
        if answer.status == 200:
            self.log.payments["paid"] += 1
            self.log.paid_orders.add(order_id)
        else:
            self.log.payments[str(body.get("error", answer.status))] += 1

    async def look(self, user: str, order_id: str) -> tuple[int, str]:
        """A shopper checking their order: (HTTP status, order status or error code)."""
        assert self._session is not None
        async with self._session.get(f"/v1/orders/{order_id}", headers=self._auth(user)) as r:
            body = await r.json(content_type=None)
        return r.status, str(body.get("status") or body.get("error"))

    async def shopper(
        self, wave: int, user: str, delay: float, pays: bool, rng: random.Random
    ) -> None:
        await asyncio.sleep(delay)
        click = await self.click(wave, user, key=f"{user}-buy")
        if click.order_id and pays:
            await asyncio.sleep(rng.uniform(0.2, 1.5))  # typing in a card number
            await self.pay(user, click.order_id)

    async def spammer(self, user: str, clicks: int, delay: float) -> None:
        await asyncio.sleep(delay)
        for n in range(clicks):
            await self.click(1, user, key=f"{user}-spam-{n}")
