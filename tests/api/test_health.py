"""Liveness, readiness, metrics, OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from flashsale.settings import Settings
from tests.conftest import Platform, auth, start_api


async def test_health_ready_metrics_docs(platform: Platform, client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": "ok", "broker": "ok", "database": "ok"}
    sale = platform.sale(stock=0)
    await client.post(f"/v1/sales/{sale}/reservations", headers=auth("m"))
    metrics = (await client.get("/metrics")).text
    assert 'flashsale_reservations_total{outcome="sold_out"}' in metrics
    # Latency is labelled by route template, so label values stay bounded.
    assert 'route="/v1/sales/{sale}/reservations"' in metrics
    latency = [line for line in metrics.splitlines() if "request_duration" in line]
    assert latency and not any(sale in line for line in latency)
    # The platform figures name each sale (flashsale/figures).
    assert f'flashsale_sale_units{{sale="{sale}",state="remaining"}} 0.0' in metrics
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/v1/sales/{sale}/reservations" in schema["paths"]


@pytest.mark.parametrize("secret", [None, "", "changeme"])
def test_api_refuses_to_start_without_a_secret(secret: str | None) -> None:
    from flashsale.api.app import create_app

    settings = Settings(jwt_secret=secret, redis_url="redis://x", database_url="postgresql://x")
    with pytest.raises(RuntimeError, match="JWT_SECRET"):
        create_app(settings)


def test_metrics_add_up_across_server_processes(platform: Platform, workdir) -> None:
    proc, base = start_api(platform, workdir, "api-two-processes", FLASHSALE_API_WORKERS="2")
    try:
        sale = platform.sale(stock=0)
        for _ in range(40):  # a new connection each time, so both processes take some
            r = httpx.post(f"{base}/v1/sales/{sale}/reservations", headers=auth("m2"))
            assert r.status_code == 409
        line = 'flashsale_reservations_total{outcome="sold_out"} 40.0'
        for _ in range(5):
            assert line in httpx.get(f"{base}/metrics").text
    finally:
        proc.stop()
