"""The classic flash-sale design, as the benchmark's baseline.

Stock lives in a PostgreSQL row and every purchase takes that row's lock:
`SELECT ... FOR UPDATE`, check, `UPDATE`, `INSERT` the order, commit, then answer.
Same framework, same JWT check, same body model and the same ASGI server and workers as
the FlashSale API (served by `flashsale.api.server.serve`, see `serve_baseline.py`), on
the same PostgreSQL, so the only difference measured is where the decision is taken."""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import orjson
import psycopg
from fastapi import Depends, FastAPI, Header, Request
from starlette.responses import Response

from flashsale.api.auth import TokenVerifier
from flashsale.api.errors import ApiError, install_error_handlers
from flashsale.api.schemas import ReservationRequest
from flashsale.settings import get_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS baseline_sales (
    name text PRIMARY KEY,
    stock integer NOT NULL CHECK (stock >= 0)
);
CREATE TABLE IF NOT EXISTS baseline_orders (
    id uuid PRIMARY KEY,
    sale text NOT NULL REFERENCES baseline_sales (name),
    user_id text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    reserved_at timestamptz NOT NULL DEFAULT now()
);
"""

POOL_SIZE = int(os.environ.get("BASELINE_POOL_SIZE", "16"))
# "on" (PostgreSQL's default: a purchase is answered once its commit is on disk) or "off"
# (answered before the flush; a crash may forget the last purchases), to show both.
SYNCHRONOUS_COMMIT = os.environ.get("BASELINE_SYNCHRONOUS_COMMIT", "on")


def prepare(database_url: str, sale: str, stock: int) -> None:
    """Create the tables and (re)load one sale with `stock` units and no orders."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("DELETE FROM baseline_orders WHERE sale = %s", (sale,))
        conn.execute(
            "INSERT INTO baseline_sales (name, stock) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET stock = EXCLUDED.stock",
            (sale, stock),
        )


def figures(database_url: str, sale: str) -> tuple[int, int]:
    """(units left, units in orders) of one sale, from one snapshot."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT s.stock, (SELECT coalesce(sum(o.quantity), 0) FROM baseline_orders o "
            "WHERE o.sale = s.name) FROM baseline_sales s WHERE s.name = %s",
            (sale,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


class Pool:
    """A fixed set of connections handed out one request at a time."""

    def __init__(self, url: str, size: int) -> None:
        self.url, self.size = url, size
        self._idle: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            await conn.execute(
                "SELECT set_config('synchronous_commit', %s, false)", (SYNCHRONOUS_COMMIT,)
            )
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        conn = await self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)


async def reserve_in_sql(
    conn: psycopg.AsyncConnection, sale: str, user: str, quantity: int
) -> str | None:
    """One purchase under the sale row's lock; the order id, or None when sold out."""
    async with conn.transaction():
        row = await (
            await conn.execute(
                "SELECT stock FROM baseline_sales WHERE name = %s FOR UPDATE", (sale,)
            )
        ).fetchone()
        if row is None:
            raise ApiError(404, "unknown_sale", "no such sale")
        if row[0] < quantity:
            return None
        await conn.execute(
            "UPDATE baseline_sales SET stock = stock - %s WHERE name = %s", (quantity, sale)
        )
        order_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO baseline_orders (id, sale, user_id, quantity) VALUES (%s, %s, %s, %s)",
            (order_id, sale, user, quantity),
        )
    return str(order_id)


async def current_user(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> str:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.user_of(authorization)


CurrentUser = Annotated[str, Depends(current_user)]


def create_app() -> FastAPI:
    settings = get_settings()
    verifier = TokenVerifier(
        settings.require_jwt_secret(), settings.token_cache_size, settings.max_token_bytes
    )
    pool = Pool(settings.require_database_url(), POOL_SIZE)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pool.open()
        # The same start-up tuning as the FlashSale API (flashsale/api/app.py).
        gc.collect()
        gc.freeze()
        yield
        await pool.close()

    app = FastAPI(title="SQL row-lock baseline", lifespan=lifespan)
    app.state.verifier = verifier
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/sales/{sale}/reservations", status_code=202)
    async def reserve(
        sale: str,
        user: CurrentUser,
        body: ReservationRequest | None = None,
    ) -> Response:
        quantity = body.quantity if body else 1
        async with pool.connection() as conn:
            order_id = await reserve_in_sql(conn, sale, user, quantity)
        if order_id is None:
            raise ApiError(409, "sold_out", "no units left")
        return Response(
            orjson.dumps({"order_id": order_id, "sale": sale, "quantity": quantity}),
            status_code=202,
            media_type="application/json",
        )

    return app
