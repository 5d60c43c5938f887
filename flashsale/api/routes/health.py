"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, Response

from flashsale.api.deps import ServicesDep
from flashsale.api.metrics import metrics_text

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
async def readyz(services: ServicesDep) -> Response:
    def database() -> None:
        with services.sessions() as session:
            session.execute(text("SELECT 1"))

    checks: dict[str, Any] = {
        "redis": services.redis.ping(),
        "broker": services.broker.ping(),
        "database": run_in_threadpool(database),
    }
    results = await asyncio.gather(
        *(asyncio.wait_for(check, CHECK_TIMEOUT) for check in checks.values()),
        return_exceptions=True,
    )
    report = {
        name: "ok" if not isinstance(result, BaseException) else f"down: {result!r}"[:200]
        for name, result in zip(checks, results, strict=True)
    }
    ready = all(value == "ok" for value in report.values())
    body = {"status": "ready" if ready else "not_ready", "checks": report}
    if not ready:
        body |= {"error": "not_ready", "detail": "a dependency is unreachable"}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
)
async def metrics(services: ServicesDep) -> Response:
    # The platform figures come from Redis and PostgreSQL (cached for a few seconds): read
    # in the threadpool, so a slow server holds up this scrape and nothing else.
    text = await run_in_threadpool(metrics_text, services.platform_figures)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
