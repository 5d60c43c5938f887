"""The operator end to end: `flashsale operator` (real kopf) against the emulator, with the
session's real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import kmock

from flashsale.persist import persist_reservation
from flashsale.stock import Outcome
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform
from tests.helpers.wait import eventually
from tests.operator.conftest import (
    API,
    DEPLOYMENTS,
    GRANTED,
    REFRESH,
    WORKER,
    Cluster,
    Operator,
    crd_version,
    operator_requests,
)

StartOperator = Callable[..., Awaitable[Operator]]


def buy(platform: Platform, sale: str, users: int) -> list[str]:
    """Take units the way the API does (the reserve script); returns the order ids."""
    orders = []
    for _ in range(users):
        order_id = str(uuid.uuid4())
        result = platform.stock.reserve(sale, f"user-{uuid.uuid4().hex[:6]}", 1, order_id)
        assert result.outcome == Outcome.ACCEPTED
        orders.append(order_id)
    return orders


def phase_is(cluster: Cluster, name: str, phase: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        status = cluster.status(name)
        return status if status.get("phase") == phase else None

    return check


def phase_events(cluster: Cluster, name: str) -> list[str]:
    return [e["message"] for e in cluster.events(name) if e["reason"] == "PhaseChanged"]


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in status.get("conditions", []) if c["type"] == kind]
    assert len(found) == 1, status
    return found[0]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def crd_status_schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd_version()["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


async def test_creating_a_sale_loads_stock_and_scales_the_deployments(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    operator = await start_operator()
    await cluster.create(
        sale_name, {"sku": "TV-1", "stock": 20, "api": {"replicas": 3}, "worker": {"replicas": 2}}
    )

    status = await eventually(phase_is(cluster, sale_name, "Active"))
    assert status["stock"] == {
        "total": 20,
        "remaining": 20,
        "reserved": 0,
        "pendingPayment": 0,
        "paid": 0,
        "expired": 0,
    }
    assert status["observedGeneration"] == 1
    assert condition(status, "StockLoaded")["status"] == "True"
    assert condition(status, "Ready")["status"] == "True"
    jsonschema.validate(status, crd_status_schema())  # what the CRD's status schema allows
    assert platform.remaining(sale_name) == 20

    await eventually(lambda: cluster.replicas(API) == 3 and cluster.replicas(WORKER) == 2)

    body = cluster.sale(sale_name)
    assert body is not None
    assert "flashsale.dev/cleanup" in body["metadata"]["finalizers"]
    # kopf's bookkeeping is in annotations; status holds only what the CRD declares.
    assert any(k.startswith("flashsale.dev/") for k in body["metadata"]["annotations"])
    assert "kopf" not in body["status"]
    assert await eventually(lambda: phase_events(cluster, sale_name)) == ["phase none -> Active"]

    # The sale's figures reach Prometheus.
    metrics = await operator.metrics()
    assert f'flashsale_sale_units{{sale="{sale_name}",state="remaining"}} 20.0' in metrics
    assert f'flashsale_sale_phase{{phase="Active",sale="{sale_name}"}} 1.0' in metrics
    assert 'flashsale_queue_messages{queue="flashsale.orders"}' in metrics
    assert f'flashsale_outbox_reservations{{sale="{sale_name}"}} 0.0' in metrics
    assert "flashsale_platform_figures_up 1.0" in metrics


async def test_raising_stock_adds_the_difference_once(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    await start_operator()
    await cluster.create(sale_name, {"sku": "TV-2", "stock": 10, "perUserLimit": 1})
    await eventually(phase_is(cluster, sale_name, "Active"))
    buy(platform, sale_name, 3)

    await cluster.patch_spec(sale_name, {"stock": 15})
    status = await eventually(
        lambda: (s := cluster.status(sale_name)).get("observedGeneration") == 2 and s
    )
    assert status["stock"]["total"] == 15
    # Several refreshes later the difference is still added exactly once.
    await eventually(lambda: cluster.status(sale_name)["stock"]["remaining"] == 12)
    await asyncio.sleep(REFRESH * 4)
    assert cluster.status(sale_name)["stock"]["remaining"] == 12
    assert platform.remaining(sale_name) == 12
    assert platform.redis.hget(SaleKeys(sale_name).meta, "total") == b"15"

    # Other spec changes reach Redis too, and never touch the stock.
    await cluster.patch_spec(sale_name, {"paused": True})
    await eventually(phase_is(cluster, sale_name, "Paused"))
    paused = platform.stock.reserve(sale_name, "someone", 1, str(uuid.uuid4()))
    assert paused.outcome == Outcome.PAUSED
    assert platform.remaining(sale_name) == 12


async def test_operator_restart_mid_sale_never_resets_stock(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    first = await start_operator()
    await cluster.create(sale_name, {"sku": "TV-3", "stock": 10, "api": {"replicas": 4}})
    await eventually(phase_is(cluster, sale_name, "Active"))
    await eventually(lambda: cluster.replicas(API) == 4)
    buy(platform, sale_name, 4)
    await eventually(lambda: cluster.status(sale_name)["stock"]["remaining"] == 6)

    await first.stop(signal.SIGKILL)  # a crash, not a graceful stop
    second = await start_operator()
    await eventually(lambda: "load-on-resume' succeeded" in second.output())

    assert platform.remaining(sale_name) == 6
    assert cluster.status(sale_name)["stock"]["remaining"] == 6
    assert cluster.status(sale_name)["stock"]["reserved"] == 4
    assert cluster.replicas(API) == 4  # never scaled down while the new operator started


async def test_phases_move_on_time_and_deployments_return_to_baseline(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    await start_operator(FLASHSALE_OPERATOR_LEAD_SECONDS="3")
    now = datetime.now(UTC)
    starts = now + timedelta(seconds=4)
    await cluster.create(
        sale_name,
        {
            "sku": "TV-4",
            "stock": 5,
            "startsAt": iso(starts),
            "endsAt": iso(now + timedelta(seconds=7)),
            "api": {"replicas": 2},
            "worker": {"replicas": 3},
        },
    )
    await eventually(phase_is(cluster, sale_name, "Scheduled"))
    # The lead time scales up before the sale opens.
    await eventually(lambda: cluster.replicas(WORKER) == 3 and cluster.replicas(API) == 2)
    assert datetime.now(UTC) < starts
    await eventually(phase_is(cluster, sale_name, "Active"))
    ended = await eventually(phase_is(cluster, sale_name, "Ended"))
    assert condition(ended, "Ready")["status"] == "False"
    await eventually(lambda: cluster.replicas(API) == 1 and cluster.replicas(WORKER) == 1)

    seen = [v.get("status", {}).get("phase") for v in cluster.history(sale_name)]
    ordered = [p for i, p in enumerate(seen) if p and (i == 0 or seen[i - 1] != p)]
    assert ordered == ["Scheduled", "Active", "Ended"]
    await eventually(lambda: len(phase_events(cluster, sale_name)) == 3)
    assert phase_events(cluster, sale_name) == [
        "phase none -> Scheduled",
        "phase Scheduled -> Active",
        "phase Active -> Ended",
    ]


async def test_a_bad_spec_gets_phase_invalid_a_condition_and_an_event(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    await start_operator()
    await cluster.create(sale_name, {"sku": "TV-5", "stock": -3, "perUserLimit": 0})

    status = await eventually(phase_is(cluster, sale_name, "Invalid"))
    loaded = condition(status, "StockLoaded")
    assert loaded["status"] == "False" and loaded["reason"] == "InvalidSpec"
    assert "stock" in loaded["message"] and "perUserLimit" in loaded["message"]
    assert condition(status, "Ready")["status"] == "False"
    jsonschema.validate(status, crd_status_schema())
    warnings = await eventually(
        lambda: [e for e in cluster.events(sale_name) if e["type"] == "Warning"]
    )
    assert warnings[0]["reason"] == "InvalidSpec" and "stock" in warnings[0]["message"]
    assert platform.redis.exists(SaleKeys(sale_name).meta) == 0
    assert cluster.replicas(API) == 1  # a refused sale asks for nothing

    # Fixing the spec loads the sale.
    await cluster.patch_spec(sale_name, {"stock": 4, "perUserLimit": 1})
    fixed = await eventually(phase_is(cluster, sale_name, "Active"))
    assert fixed["stock"]["remaining"] == 4 and fixed["observedGeneration"] == 2
    assert condition(fixed, "StockLoaded")["status"] == "True"

    # Lowering stock below what is already sold is refused by the loader.
    buy(platform, sale_name, 3)
    await cluster.patch_spec(sale_name, {"stock": 2})
    refused = await eventually(phase_is(cluster, sale_name, "Invalid"))
    assert condition(refused, "StockLoaded")["reason"] == "Refused"
    assert "3 units are already taken" in refused["message"]
    assert platform.remaining(sale_name) == 1  # Redis kept the sale as it was
    # It still sells as it was, so its figures stay current while the phase says Invalid.
    buy(platform, sale_name, 1)
    await eventually(lambda: cluster.status(sale_name)["stock"]["remaining"] == 0)
    assert cluster.status(sale_name)["phase"] == "Invalid"


async def test_deleting_a_sale_ends_it_and_removes_its_keys_after_in_flight_orders_land(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    await start_operator()
    await cluster.create(sale_name, {"sku": "TV-6", "stock": 5, "api": {"replicas": 2}})
    await eventually(phase_is(cluster, sale_name, "Active"))
    await eventually(lambda: cluster.replicas(API) == 2)
    persisted, in_flight = buy(platform, sale_name, 2)
    persist_reservation(platform.sessions, platform.stock, sale_name, persisted)

    await cluster.delete(sale_name)
    meta = SaleKeys(sale_name).meta
    # Closed at once: no reservation is accepted any more ...
    await eventually(lambda: platform.redis.hget(meta, "closed") == b"1")
    late = platform.stock.reserve(sale_name, "late-user", 1, str(uuid.uuid4()))
    assert late.outcome == Outcome.ENDED
    # ... but the keys stay while an accepted reservation is still on its way to SQL.
    assert cluster.sale(sale_name) is not None
    assert platform.redis.exists(meta) == 1

    persist_reservation(platform.sessions, platform.stock, sale_name, in_flight)
    await eventually(lambda: cluster.sale(sale_name) is None)
    assert list(platform.redis.scan_iter(match=SaleKeys(sale_name).pattern)) == []
    assert {o["status"] for o in platform.orders(sale_name)} == {"pending_payment"}
    assert len(platform.orders(sale_name)) == 2  # orders stay in SQL
    await eventually(lambda: cluster.replicas(API) == 1)  # the last sale is gone

    # Everything above stayed within the chart's least-privilege Role.
    used = operator_requests(cluster.emulator)
    assert set(used) <= set(GRANTED), used
    assert {("", "events", None), ("flashsale.dev", "flashsales", "status")} <= set(used)
    for resource, verbs in used.items():
        assert verbs <= GRANTED[resource], (resource, verbs)
    scaled = [
        r
        for r in list(cluster.emulator)
        if r.resource == DEPLOYMENTS and r.action == kmock.action.UPDATE
    ]
    assert scaled and all(
        r.data == {"spec": {"replicas": r.data["spec"]["replicas"]}} for r in scaled
    )
    assert all(r.headers["Content-Type"] == "application/merge-patch+json" for r in scaled)


async def test_an_empty_deployment_name_leaves_that_deployment_to_its_autoscaler(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    operator = await start_operator(FLASHSALE_OPERATOR_API_DEPLOYMENT="")
    await cluster.create(
        sale_name, {"sku": "TV-7", "stock": 3, "api": {"replicas": 5}, "worker": {"replicas": 2}}
    )
    await eventually(lambda: cluster.replicas(WORKER) == 2)
    await asyncio.sleep(REFRESH * 3)
    assert cluster.replicas(API) == 1
    touched = {r.name for r in list(cluster.emulator) if r.resource == DEPLOYMENTS}
    assert touched == {WORKER}  # not even read
    assert "not found" not in operator.output() and "skipped" not in operator.output()
