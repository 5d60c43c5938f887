"""The emulator keeps the API server's promises that kopf and the operator rely on."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import kmock
import pytest

from tests.operator.conftest import FLASHSALES, declare_resources
from tests.operator.emulator import ClusterEmulator

BASE = "/apis/flashsale.dev/v1alpha1/namespaces/ns1/flashsales"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
async def api() -> AsyncIterator[tuple[ClusterEmulator, httpx.AsyncClient]]:
    async with ClusterEmulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        base = str(emulator.url).rstrip("/")
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            yield emulator, client


async def create(client: httpx.AsyncClient, name: str, **extra: Any) -> dict[str, Any]:
    body = {"metadata": {"name": name, **extra}, "spec": {"sku": "S", "stock": 1}}
    response = await client.post(BASE, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_writes_stamp_identity_and_versions(
    api: tuple[ClusterEmulator, httpx.AsyncClient],
) -> None:
    _, client = api
    first = (await create(client, "a"))["metadata"]
    assert first["uid"] and first["creationTimestamp"].endswith("Z")
    assert first["generation"] == 1 and first["namespace"] == "ns1"

    spec = await client.patch(f"{BASE}/a", json={"spec": {"stock": 2}}, headers=MERGE)
    status = await client.patch(
        f"{BASE}/a/status", json={"status": {"phase": "Active"}}, headers=MERGE
    )
    noop = await client.patch(f"{BASE}/a", json={"spec": {"stock": 2}}, headers=MERGE)
    versions = [int(r.json()["metadata"]["resourceVersion"]) for r in (spec, status, noop)]
    assert versions[0] > int(first["resourceVersion"]) and versions[1] > versions[0]
    assert versions[2] == versions[1]  # a no-op patch changes nothing
    assert spec.json()["metadata"]["generation"] == 2
    assert status.json()["metadata"]["generation"] == 2  # status does not bump it
    assert spec.json()["metadata"]["uid"] == first["uid"]

    named = (await create(client, "", generateName="kopf-event-"))["metadata"]["name"]
    assert named.startswith("kopf-event-") and len(named) > len("kopf-event-")
    duplicate = await client.post(BASE, json={"metadata": {"name": "a"}, "spec": {}})
    assert duplicate.status_code == 409


async def test_status_subresource_separates_status_from_the_rest(
    api: tuple[ClusterEmulator, httpx.AsyncClient],
) -> None:
    emulator, client = api
    await create(client, "a")
    await client.patch(f"{BASE}/a", json={"status": {"phase": "X"}}, headers=MERGE)
    await client.patch(
        f"{BASE}/a/status", json={"spec": {"stock": 9}, "status": {"phase": "Y"}}, headers=MERGE
    )
    body = emulator.objects[FLASHSALES, "ns1", "a"].raw
    assert body["status"] == {"phase": "Y"} and body["spec"]["stock"] == 1


async def test_json_patch_with_a_stale_version_is_refused_with_422(
    api: tuple[ClusterEmulator, httpx.AsyncClient],
) -> None:
    _, client = api
    version = (await create(client, "a"))["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
    ]
    assert (await client.patch(f"{BASE}/a", json=ops, headers=JSON_PATCH)).status_code == 200
    stale = await client.patch(f"{BASE}/a", json=ops, headers=JSON_PATCH)
    assert stale.status_code == 422


async def test_finalizers_hold_deletion_until_removed(
    api: tuple[ClusterEmulator, httpx.AsyncClient],
) -> None:
    _, client = api
    await create(client, "a", finalizers=["x"])
    deleted = await client.delete(f"{BASE}/a")
    assert deleted.json()["metadata"]["deletionTimestamp"]
    assert (await client.get(f"{BASE}/a")).status_code == 200
    await client.patch(f"{BASE}/a", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert (await client.get(f"{BASE}/a")).status_code == 404


async def test_a_watch_resumes_after_the_version_it_asks_for(
    api: tuple[ClusterEmulator, httpx.AsyncClient],
) -> None:
    _, client = api
    await create(client, "a")
    listed = (await client.get(BASE)).json()
    since = listed["metadata"]["resourceVersion"]
    await create(client, "b")  # happens between the list and the watch
    events: list[dict[str, Any]] = []

    async def watch() -> None:
        params = {"watch": "true", "resourceVersion": since}
        async with client.stream("GET", BASE, params=params) as stream:
            async for line in stream.aiter_lines():
                if line.strip():
                    events.append(json.loads(line))

    task = asyncio.create_task(watch())
    await client.patch(f"{BASE}/a", json={"spec": {"stock": 5}}, headers=MERGE)
    for _ in range(50):
        if len(events) >= 2:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert seen == [("ADDED", "b"), ("MODIFIED", "a")]  # nothing before `since`, nothing twice


async def test_lists_honour_field_selectors_and_tables_print_columns(
    api: tuple[ClusterEmulator, httpx.AsyncClient],
) -> None:
    _, client = api
    await create(client, "a")
    await create(client, "b")
    picked = await client.get(BASE, params={"fieldSelector": "metadata.name=b"})
    assert [i["metadata"]["name"] for i in picked.json()["items"]] == ["b"]

    table = await client.get(BASE, headers={"Accept": "application/json;as=Table;v=v1"})
    body = table.json()
    assert body["kind"] == "Table"
    assert [c["name"] for c in body["columnDefinitions"]][:3] == ["Name", "SKU", "PHASE"]
    assert {r["cells"][0]: r["cells"][1] for r in body["rows"]} == {"a": "S", "b": "S"}

    discovery = (await client.get("/apis/flashsale.dev/v1alpha1")).json()["resources"]
    short = {r["name"]: r["shortNames"] for r in discovery}
    assert short == {"flashsales": ["fs"], "flashsales/status": []}
