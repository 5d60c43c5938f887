"""Shoppers over real HTTP: each click and payment is recorded with its outcome and time."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
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


@dataclass(frozen=True, slots=True)
class RoomCall:
    """One join or poll of the waiting room, and what it said."""

    at: float  # seconds since the demo started, when the answer arrived
    wave: int
    user: str
    op: str  # "join" or "poll"
    status: int  # HTTP status, 0 when no answer came
    outcome: str  # waiting, admitted, expired, sold_out, or the error code
    poll_after: float


@dataclass
class CrowdLog:
    started: float = field(default_factory=time.monotonic)
    clicks: list[Click] = field(default_factory=list)
    payments: Counter[str] = field(default_factory=Counter)  # outcome -> count
    paid_orders: set[str] = field(default_factory=set)
    room_calls: list[RoomCall] = field(default_factory=list)
    admitted_at: dict[str, float] = field(default_factory=dict)  # first answer "admitted"
    done: int = 0  # shoppers through the waiting room, whatever became of them

    def now(self) -> float:
        return time.monotonic() - self.started

    def accepted(self) -> list[Click]:
        return [c for c in self.clicks if c.outcome == "accepted"]

    def outcomes(self) -> Counter[str]:
        return Counter(c.outcome for c in self.clicks)

    def first_accepted(self) -> float | None:
        return min((c.at for c in self.accepted()), default=None)


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

    async def room_call(self, wave: int, user: str, op: str) -> RoomCall:
        """Join (POST) or poll (GET) the sale's waiting room."""
        assert self._session is not None
        method = self._session.post if op == "join" else self._session.get
        try:
            async with method(f"/v1/sales/{self.sale}/queue", headers=self._auth(user)) as r:
                body = await r.json(content_type=None)
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            body, status = {"error": f"client:{type(exc).__name__}"}, 0
        outcome = str(body.get("status") if status < 300 else body.get("error", status))
        call = RoomCall(
            self.log.now(),
            wave,
            user,
            op,
            status,
            outcome,
            float(body.get("poll_after_seconds", 1)),
        )
        self.log.room_calls.append(call)
        if outcome == "admitted":
            self.log.admitted_at.setdefault(user, call.at)
        return call

    async def queued_shopper(
        self,
        wave: int,
        user: str,
        delay: float,
        walks_away: bool,
        pays: Callable[[], bool],
        rng: random.Random,
        poll_cap: float,
    ) -> None:
        """A shopper in front of a waiting room, as the page /wait/{sale} goes: join, poll
        at the interval the room asks for (at most `poll_cap` apart: the demo's clock is
        fast), buy once admitted. Sold out while admitted: try again at the next poll that
        still says admitted (a unit may come back); the turn ends on "expired" or
        "sold_out". A shopper who `walks_away` never clicks "Buy": their turn expires."""
        await asyncio.sleep(delay)
        op, tries, looked = "join", 0, False
        try:
            while True:
                call = await self.room_call(wave, user, op)
                if call.status in (0, 503) or call.outcome == "not_open":
                    await asyncio.sleep(1.0)  # no answer yet: ask again, as the page does
                    continue
                if call.status >= 400 or call.outcome in ("expired", "sold_out"):
                    return  # turned away (sold out) or the turn is over
                op = "poll"
                if call.outcome == "admitted":
                    if walks_away:
                        return
                    if not looked:
                        looked = True
                        await asyncio.sleep(rng.uniform(0.2, 1.0))  # a look at the product
                    click = await self.click(wave, user, key=f"{user}-buy-{tries}")
                    if click.order_id:
                        if pays():
                            await asyncio.sleep(rng.uniform(0.2, 1.5))
                            await self.pay(user, click.order_id)
                        return
                    if click.outcome == "sold_out":
                        tries += 1  # a new purchase next time, as the page makes it
                    elif click.outcome == "limit_reached":
                        return
                    # Rate limited or no answer: the same purchase again; not admitted
                    # (the turn just ran out): the next poll says so.
                await asyncio.sleep(min(call.poll_after, poll_cap))
        finally:
            self.log.done += 1
