"""Prometheus metrics: reservation outcomes and request latency, counted by each process,
and the platform figures (flashsale/figures), read when scraped."""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RESERVATIONS = Counter(
    "flashsale_reservations_total",
    "Reservation requests by outcome",
    ["outcome"],
)
ROOM_CALLS = Counter(
    "flashsale_room_calls_total",
    "Waiting-room joins and polls by what they answered",
    ["op", "status"],
)
HANDOFF_FAILURES = Counter(
    "flashsale_handoff_failures_total",
    "Accepted reservations whose task publish failed (left in the outbox for sweep)",
)
RESERVE_CALL_PURCHASES = Histogram(
    "flashsale_reserve_call_purchases",
    "Purchases decided by one call of the reserve script (requests that arrived together)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
REQUEST_SECONDS = Histogram(
    "flashsale_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


_TIMERS: dict[tuple[str, str, int], Any] = {}  # histogram children, looked up once each


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    timer = _TIMERS.get((method, route, status))
    if timer is None:
        timer = _TIMERS[(method, route, status)] = REQUEST_SECONDS.labels(
            method, route, str(status)
        )
    timer.observe(seconds)


def metrics_text(platform: Collector | None = None) -> bytes:
    """The exposition text; with several server processes (PROMETHEUS_MULTIPROC_DIR set),
    the sum over all of them rather than the one process that took the scrape. The
    platform figures are the same from every process, so they are collected once, here,
    beside the counters; collecting them reads Redis and PostgreSQL, so call this from a
    worker thread, never on the event loop."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(REGISTRY)
    if platform is not None:
        registry.register(platform)
    return generate_latest(registry)


class LatencyMiddleware:
    """Times every request, labelled by route template (not raw path: bounded labels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            observe_request(scope["method"], template, status, time.perf_counter() - start)
