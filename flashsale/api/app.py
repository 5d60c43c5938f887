"""The FastAPI application."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.exceptions import RedisError

from flashsale.api.docs import documented_app
from flashsale.api.errors import install_error_handlers
from flashsale.api.fastpath import ReservationFastPath
from flashsale.api.guard import RequestGuard
from flashsale.api.limits import BodySizeLimit
from flashsale.api.metrics import LatencyMiddleware
from flashsale.api.routes import health, orders, page, queue, reservations, sales
from flashsale.api.services import Services
from flashsale.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> RequestGuard:
    """The application, behind the reservation fast path (see flashsale/api/fastpath.py),
    behind the guard that answers bodies the server could not read (flashsale/api/guard.py)."""
    settings = settings or get_settings()
    return RequestGuard(
        ReservationFastPath(create_api(settings), settings.max_body_bytes),
        settings.body_timeout_seconds,
    )


def create_api(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.require_jwt_secret()  # fail at start-up, not on the first request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services.build(settings)
        try:  # every reservation call then carries a deadline, the first ones too
            await app.state.services.fast_stock.sync_clock()
        except RedisError as exc:  # learnt from the first answer instead
            log.warning("Redis clock not read at start-up: %s", exc)
        # Everything alive now lives as long as the process: keep the cyclic garbage
        # collector from walking it again on every full collection under load.
        gc.collect()
        gc.freeze()
        yield
        await app.state.services.close()

    # No redirect for a trailing slash: Starlette builds its Location from the Host
    # header, which the client chooses; such a path is simply not found.
    app = documented_app(
        title="FlashSale", version="0.1.0", lifespan=lifespan, redirect_slashes=False
    )
    install_error_handlers(app)
    for module in (reservations, queue, orders, sales, health, page):
        app.include_router(module.router)
    app.add_middleware(LatencyMiddleware)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
