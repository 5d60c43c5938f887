"""The real `flashsale operator` process against KMock's Kubernetes emulator (over HTTP, in
this test's event loop) and the session's real Redis and PostgreSQL.

Every test gets its own namespace, its own API and worker Deployments and its own operator,
so scaling assertions never see another test's sales. Waiting is always `await`ed: the
emulator answers only while the event loop runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import kmock
import pytest
import yaml

from flashsale.embedded import free_port
from tests.conftest import FLASHSALE, Platform
from tests.operator.emulator import ClusterEmulator

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "flashsales.flashsale.dev.yaml"
FLASHSALES = kmock.resource("flashsale.dev/v1alpha1/flashsales")
DEPLOYMENTS = kmock.resource("apps/v1/deployments")
EVENTS = kmock.resource("v1/events")
API, WORKER = "flashsale-api", "flashsale-worker"
REFRESH = 0.3


def crd_version() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_PATH.read_text())
    version: dict[str, Any] = crd["spec"]["versions"][0]
    return version


def declare_resources(emulator: ClusterEmulator) -> None:
    """What discovery shows kopf: the FlashSale CRD as `crds/` defines it, plus the built-in
    resources it and the operator touch (every real API server serves these)."""
    crd = yaml.safe_load(CRD_PATH.read_text())
    names = crd["spec"]["names"]
    emulator.resources[FLASHSALES] = kmock.ResourceInfo(
        kind=names["kind"],
        singular=names["singular"],
        shortnames=set(names.get("shortNames", [])),
        namespaced=crd["spec"]["scope"] == "Namespaced",
        subresources=set(crd_version().get("subresources", {})),
        verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
    )
    emulator.printer_columns[FLASHSALES] = crd_version().get("additionalPrinterColumns", [])
    emulator.resources[EVENTS] = kmock.ResourceInfo(
        kind="Event", singular="event", namespaced=True, verbs={"create", "patch", "list"}
    )
    emulator.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace", singular="namespace", namespaced=False, verbs={"get", "list", "watch"}
    )
    emulator.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition",
        singular="customresourcedefinition",
        namespaced=False,
        verbs={"get", "list", "watch"},
    )
    emulator.resources[DEPLOYMENTS] = kmock.ResourceInfo(
        kind="Deployment",
        singular="deployment",
        namespaced=True,
        subresources={"status", "scale"},
        verbs={"get", "list", "watch", "patch"},
    )


@dataclass
class Cluster:
    emulator: ClusterEmulator
    namespace: str
    kubeconfig: Path

    def sale(self, name: str) -> dict[str, Any] | None:
        key = (FLASHSALES, self.namespace, name)
        if key not in self.emulator.objects or self.emulator.objects[key].deleted:
            return None
        return self.emulator.objects[key].raw

    def status(self, name: str) -> dict[str, Any]:
        body = self.sale(name) or {}
        return dict(body.get("status") or {})

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every version the sale went through, oldest first."""
        versions = self.emulator.objects[FLASHSALES, self.namespace, name].history
        return [dict(v.raw) for v in versions if v is not None]

    def replicas(self, deployment: str) -> int:
        body = self.emulator.objects[DEPLOYMENTS, self.namespace, deployment]
        return int(body["spec"]["replicas"])

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for (resource, namespace, _), obj in self.emulator.objects.items():
            if resource == EVENTS and namespace == self.namespace:
                if not obj.deleted and obj.raw.get("involvedObject", {}).get("name") == name:
                    found.append(obj.raw)
        return found

    async def request(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        async with httpx.AsyncClient(base_url=str(self.emulator.url), timeout=10) as client:
            response = await client.request(method, path, json=body, headers=headers)
        response.raise_for_status()
        return response.json()

    def path(self, name: str = "") -> str:
        base = f"/apis/flashsale.dev/v1alpha1/namespaces/{self.namespace}/flashsales"
        return f"{base}/{name}" if name else base

    async def create(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": "flashsale.dev/v1alpha1",
            "kind": "FlashSale",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        await self.request("POST", self.path(), body)

    async def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        await self.request(
            "PATCH",
            self.path(name),
            {"spec": spec},
            **{"Content-Type": "application/merge-patch+json"},
        )

    async def delete(self, name: str) -> None:
        await self.request("DELETE", self.path(name))


VERBS = {"FETCH": "get", "LIST": "list", "WATCH": "watch", "CREATE": "create", "UPDATE": "patch"}
VERBS["DELETE"] = "delete"

# The Role the chart grants the operator (the interface agreed with the chart).
GRANTED: dict[tuple[str, str, str | None], set[str]] = {
    ("flashsale.dev", "flashsales", None): {"get", "list", "watch", "patch"},
    ("flashsale.dev", "flashsales", "status"): {"get", "patch"},
    ("", "events", None): {"create", "patch"},
    ("events.k8s.io", "events", None): {"create", "patch"},
    ("apps", "deployments", None): {"get", "patch"},
}


def operator_requests(emulator: ClusterEmulator) -> dict[tuple[str, str, str | None], set[str]]:
    """(group, plural, subresource) -> verbs the operator used: every resource request
    not sent by the tests themselves (they use httpx; kopf and the operator's client aiohttp)."""
    used: dict[tuple[str, str, str | None], set[str]] = {}
    for request in list(emulator):  # iterating a kmock handler yields its requests
        if request.resource is None or request.resource.plural is None or not request.action:
            continue  # discovery: open to every authenticated client
        if "httpx" in request.headers.get("User-Agent", ""):
            continue
        key = (request.resource.group, request.resource.plural, request.subresource)
        used.setdefault(key, set()).add(VERBS[request.action.name])
    return used


@dataclass
class Operator:
    """`flashsale operator` as the container runs it, output in a log file."""

    cluster: Cluster
    platform: Platform
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    liveness_port: int = 0
    metrics_port: int = 0

    async def start(self) -> Operator:
        self.liveness_port, self.metrics_port = free_port(), free_port()
        env = {
            **self.platform.env,
            # The workers' pace goes to the broker's database: a database of its own keeps
            # it away from the session's shared Celery worker.
            "FLASHSALE_BROKER_URL": operator_broker(self.platform),
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "FLASHSALE_OPERATOR_REFRESH_SECONDS": str(REFRESH),
            "FLASHSALE_OPERATOR_LEAD_SECONDS": "1",
            "FLASHSALE_OPERATOR_METRICS_PORT": str(self.metrics_port),
            **self.extra_env,
        }
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    FLASHSALE,
                    "--log-level",
                    os.environ.get("FLASHSALE_TEST_OPERATOR_LOG_LEVEL", "INFO"),
                    "operator",
                    "--namespace",
                    self.cluster.namespace,
                    "--liveness",
                    f"http://127.0.0.1:{self.liveness_port}/healthz",
                ],
                env=env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        await self.wait_alive()
        return self

    async def wait_alive(self, timeout: float = 30.0) -> None:
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as client:
            while True:
                assert self.proc and self.proc.poll() is None, self.output()
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("operator not alive in time:\n" + self.output())
                await asyncio.sleep(0.1)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:  # poll, not wait(): the emulator must keep answering
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
            await asyncio.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def metrics(self) -> str:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text


def operator_broker(platform: Platform) -> str:
    return platform.redis_url.rsplit("/", 1)[0] + "/1"


def deployment(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    """A Deployment as the API server holds it: the client reads it into its typed model,
    which wants a selector and a pod template."""
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": "flashsale:test"}]},
            },
        },
    }


def write_kubeconfig(path: Path, server: str, namespace: str) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": server}}],
                "users": [{"name": "kmock", "user": {"token": "test-token"}}],
                "contexts": [
                    {
                        "name": "kmock",
                        "context": {"cluster": "kmock", "user": "kmock", "namespace": namespace},
                    }
                ],
                "current-context": "kmock",
            }
        )
    )


@pytest.fixture
async def cluster(workdir: Path) -> AsyncIterator[Cluster]:
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    async with ClusterEmulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        for name in (API, WORKER):
            body = emulator.stamp_new(deployment(name, namespace, 1), namespace)
            emulator.objects[DEPLOYMENTS, namespace, name] = body
        kubeconfig = workdir / f"kubeconfig-{namespace}.yaml"
        write_kubeconfig(kubeconfig, str(emulator.url).rstrip("/"), namespace)
        yield Cluster(emulator, namespace, kubeconfig)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
async def start_operator(
    request: pytest.FixtureRequest, cluster: Cluster, platform: Platform, workdir: Path
) -> AsyncIterator[Callable[..., Awaitable[Operator]]]:
    started: list[Operator] = []

    async def start(**extra_env: str) -> Operator:
        log = workdir / f"operator-{cluster.namespace}.log"
        operator = await Operator(cluster, platform, log, extra_env).start()
        started.append(operator)
        return operator

    yield start
    for operator in started:
        await operator.stop()
    if request.node.stash.get(FAILED, False) and started:
        # The operator's own account of a failed test, in the test's report.
        print("---- operator log ----\n" + started[-1].output()[-12000:])


@pytest.fixture
def sale_name() -> str:
    return f"op-{uuid.uuid4().hex[:8]}"
