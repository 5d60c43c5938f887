"""What SREs see: `kubectl get fs`, printed with the CRD's printer columns, over sales the
operator runs. The table comes from the emulator as the API server would send it, and the
pinned `kubectl` (unpacked by `scripts/k8s_tools.py`) prints it."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flashsale.orders import pay_order
from flashsale.persist import persist_reservation
from flashsale.stock import Outcome
from tests.conftest import Platform
from tests.helpers.wait import eventually
from tests.operator.conftest import ROOT, Cluster, Operator


def kubectl_binary() -> str | None:
    """The pinned kubectl (SHA-256 checked), else one on PATH, else None."""
    spec = importlib.util.spec_from_file_location("k8s_tools", ROOT / "scripts" / "k8s_tools.py")
    assert spec and spec.loader
    tools = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tools)
    try:
        return str(Path(tools.ensure_tools()) / "kubectl")
    except tools.ToolsError:
        return shutil.which("kubectl")


async def run_sales(cluster: Cluster, platform: Platform, prefix: str) -> dict[str, str]:
    """Three sales in three phases, one with a paid order and a pending one."""
    names = {phase: f"{prefix}-{phase.lower()}" for phase in ("Active", "Scheduled", "Invalid")}
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await cluster.create(names["Active"], {"sku": "TV-55-OLED", "stock": 100})
    await cluster.create(names["Scheduled"], {"sku": "PHONE-X", "stock": 50, "startsAt": later})
    await cluster.create(names["Invalid"], {"sku": "CAM-9", "stock": -1})
    for phase, name in names.items():
        await eventually(lambda n=name, p=phase: cluster.status(n).get("phase") == p)
    active = names["Active"]
    for user in ("ann", "bob"):
        order_id = str(uuid.uuid4())
        assert platform.stock.reserve(active, user, 1, order_id).outcome == Outcome.ACCEPTED
        persist_reservation(platform.sessions, platform.stock, active, order_id)
        if user == "ann":
            pay_order(platform.sessions, platform.stock, user, order_id)
    await eventually(lambda: cluster.status(active)["stock"]["paid"] == 1)
    return names


async def test_kubectl_get_fs_prints_the_printer_columns(
    cluster: Cluster,
    platform: Platform,
    start_operator: Callable[..., Awaitable[Operator]],
    workdir: Path,
) -> None:
    binary = kubectl_binary()  # before the operator runs: unpacking it blocks the loop
    await start_operator()
    names = await run_sales(cluster, platform, f"fs{uuid.uuid4().hex[:4]}")

    table = await cluster.request(
        "GET", cluster.path(), Accept="application/json;as=Table;v=v1;g=meta.k8s.io"
    )
    headers = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert headers == ["Name", "SKU", "PHASE", "REMAINING", "PAID", "AGE"]
    rows = {row["cells"][0]: row["cells"][1:5] for row in table["rows"]}
    assert rows[names["Active"]] == ["TV-55-OLED", "Active", 98, 1]
    assert rows[names["Scheduled"]] == ["PHONE-X", "Scheduled", 50, 0]
    assert rows[names["Invalid"]] == ["CAM-9", "Invalid", None, None]

    if binary is None:
        pytest.skip("no kubectl for this platform (the pinned one is linux-amd64)")
    process = await asyncio.create_subprocess_exec(  # async: the emulator must keep answering
        binary,
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--cache-dir",
        str(workdir / "kubectl-cache"),
        "get",
        "fs",
        "-n",
        cluster.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    printed = out.decode()
    print(f"\n$ kubectl get fs -n {cluster.namespace}\n{printed}")
    lines = printed.splitlines()
    assert lines[0].split() == ["NAME", "SKU", "PHASE", "REMAINING", "PAID", "AGE"]
    by_name = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert by_name[names["Active"]][:4] == ["TV-55-OLED", "Active", "98", "1"]
    assert by_name[names["Scheduled"]][:4] == ["PHONE-X", "Scheduled", "50", "0"]
    assert by_name[names["Invalid"]][:2] == ["CAM-9", "Invalid"]
