"""The operator's own Kubernetes client: it logs in with kopf's credentials, and a request
the API server never answers costs one FLASHSALE_OPERATOR_REQUEST_TIMEOUT_SECONDS, not the
scaling loop."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from flashsale.operator.kube import USER_AGENT
from tests.helpers.wait import eventually
from tests.operator.conftest import API, DEPLOYMENTS, FLASHSALES, Cluster, Operator

StartOperator = Callable[..., Awaitable[Operator]]


async def test_a_hanging_api_server_costs_one_request_timeout_then_scaling_goes_on(
    cluster: Cluster, start_operator: StartOperator, sale_name: str
) -> None:
    cluster.emulator.stalled.append(DEPLOYMENTS)
    operator = await start_operator(FLASHSALE_OPERATOR_REQUEST_TIMEOUT_SECONDS="1")
    began = time.monotonic()
    await cluster.create(sale_name, {"sku": "K-1", "stock": 3, "api": {"replicas": 2}})

    skipped = "scaling skipped this round: no answer within 1s"
    await eventually(lambda: skipped in operator.output(), timeout=10)
    assert time.monotonic() - began < 5  # one timeout of 1 s, not kopf's or aiohttp's own
    assert cluster.replicas(API) == 1

    cluster.emulator.stalled.clear()
    await eventually(lambda: cluster.replicas(API) == 2)


async def test_the_client_and_kopf_send_the_same_kubeconfig_credentials(
    cluster: Cluster, start_operator: StartOperator, sale_name: str
) -> None:
    await start_operator()
    await cluster.create(sale_name, {"sku": "K-2", "stock": 3, "api": {"replicas": 2}})
    await eventually(lambda: cluster.replicas(API) == 2)

    requests = [r for r in list(cluster.emulator) if "httpx" not in r.headers.get("User-Agent", "")]
    ours = [r for r in requests if r.headers.get("User-Agent") == USER_AGENT]
    kopfs = [r for r in requests if r.headers.get("User-Agent") != USER_AGENT]
    assert ours and kopfs
    assert all(r.resource in (DEPLOYMENTS, FLASHSALES) for r in ours)
    # The token of the kubeconfig the tests write (conftest.write_kubeconfig).
    assert {r.headers.get("Authorization") for r in requests} == {"Bearer test-token"}
