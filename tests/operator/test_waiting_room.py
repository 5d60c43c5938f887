"""A sale with a waiting room, run by the real operator against the emulator: its status
shows the queue, the draw's commitment before the start and the seed that matches it
after, `kubectl get fs -o wide` prints WAITING and ADMITTED, and the operator's metrics
port exports the room's figures."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema

from flashsale.stock.room import DRAW_PLACES, draw_place
from tests.conftest import Platform
from tests.helpers.wait import eventually
from tests.operator.conftest import Cluster, Operator, crd_version
from tests.operator.test_kubectl import kubectl_binary

StartOperator = Callable[..., Awaitable[Operator]]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
SHOPPERS = [f"shopper-{i}" for i in range(5)]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def room_when(cluster: Cluster, name: str, **wanted: Any) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        room = cluster.status(name).get("waitingRoom") or {}
        return room if room and all(room.get(k) == v for k, v in wanted.items()) else None

    return check


async def wide_row(cluster: Cluster, name: str) -> dict[str, Any]:
    table = await cluster.request("GET", cluster.path(), Accept=TABLE)
    headers = [c["name"] for c in table["columnDefinitions"]]
    row = next(r["cells"] for r in table["rows"] if r["cells"][0] == name)
    return dict(zip(headers, row, strict=True))


def metric(text: str, name: str, sale: str) -> float | None:
    prefix = f'{name}{{sale="{sale}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else None


async def kubectl_wide(binary: str, cluster: Cluster, workdir: Path) -> str:
    """`kubectl get fs -o wide` as an SRE types it, printed by the pinned kubectl."""
    process = await asyncio.create_subprocess_exec(  # async: the emulator must keep answering
        binary,
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--cache-dir",
        str(workdir / "kubectl-cache"),
        "get",
        "fs",
        "-o",
        "wide",
        "-n",
        cluster.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def scraped_when(
    operator: Operator, check: Callable[[str], bool], timeout: float = 15.0
) -> str:
    """The operator's /metrics once `check` holds (its figures are cached a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        text = await operator.metrics()
        if check(text):
            return text
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.2)


async def test_the_status_shows_the_queue_and_commits_to_the_draw_before_the_start(
    cluster: Cluster,
    platform: Platform,
    start_operator: StartOperator,
    sale_name: str,
    workdir: Path,
) -> None:
    binary = kubectl_binary()  # before the operator runs: unpacking it blocks the loop
    operator = await start_operator()
    starts = datetime.now(UTC) + timedelta(seconds=6)
    room = {"order": "draw", "admitPerSecond": 1000, "shoppingSeconds": 600, "overbook": 10}
    await cluster.create(
        sale_name,
        {
            "sku": "TV-ROOM",
            "stock": 10,
            "startsAt": iso(starts),
            "waitingRoom": {"opensAt": iso(starts - timedelta(minutes=5)), **room},
        },
    )
    before = await eventually(room_when(cluster, sale_name, waiting=0))
    assert cluster.status(sale_name)["phase"] == "Scheduled"
    commitment = before["drawCommitment"]
    assert "drawSeed" not in before
    assert (before["admitted"], before["admissions"], before["expired"]) == (0, 0, 0)

    for user in SHOPPERS:
        assert platform.stock.join(sale_name, user).status == "waiting"
    waiting = await eventually(room_when(cluster, sale_name, waiting=len(SHOPPERS)))
    assert waiting["drawCommitment"] == commitment and "drawSeed" not in waiting
    row = await wide_row(cluster, sale_name)
    assert (row["WAITING"], row["ADMITTED"]) == (len(SHOPPERS), 0)
    text = await scraped_when(
        operator, lambda t: metric(t, "flashsale_room_waiting", sale_name) == len(SHOPPERS)
    )
    assert metric(text, "flashsale_room_admitted", sale_name) == 0
    assert metric(text, "flashsale_room_admissions_total", sale_name) == 0
    assert metric(text, "flashsale_room_expiries_total", sale_name) == 0

    # The start: the seed is revealed, and it is the one committed to.
    revealed = await eventually(
        lambda: (r := cluster.status(sale_name).get("waitingRoom") or {}).get("drawSeed") and r,
        timeout=20,
    )
    assert revealed["drawCommitment"] == commitment
    assert hashlib.sha256(revealed["drawSeed"].encode()).hexdigest() == commitment
    # Every early shopper's place is the one the seed gives.
    seed, entrants = platform.stock.draw_entrants(sale_name)
    assert seed == revealed["drawSeed"]
    assert sorted(entrants) == sorted((u, draw_place(seed, u)) for u in SHOPPERS)
    assert all(place < DRAW_PLACES for _, place in entrants)

    # Polls move the gate: every shopper is let in, and the status and columns follow.
    await eventually(
        lambda: all(platform.stock.poll(sale_name, u).status == "admitted" for u in SHOPPERS)
    )
    admitted = await eventually(
        room_when(cluster, sale_name, waiting=0, admitted=len(SHOPPERS), admissions=len(SHOPPERS))
    )
    assert admitted["drawSeed"] == revealed["drawSeed"]
    assert cluster.status(sale_name)["phase"] == "Active"
    row = await wide_row(cluster, sale_name)
    assert (row["WAITING"], row["ADMITTED"]) == (0, len(SHOPPERS))
    if binary is not None:
        printed = await kubectl_wide(binary, cluster, workdir)
        header, *lines = printed.splitlines()
        assert header.split()[-4:] == ["SEGMENTS", "WAITING", "ADMITTED", "MESSAGE"]
        line = next(line for line in lines if line.split()[0] == sale_name)
        # Cut at the header's offsets: a column the emulator leaves empty prints as blanks.
        waiting = line[header.index("WAITING") : header.index("ADMITTED")].strip()
        admitted = line[header.index("ADMITTED") : header.index("MESSAGE")].strip()
        assert (waiting, admitted) == ("0", str(len(SHOPPERS)))
    status_schema = crd_version()["schema"]["openAPIV3Schema"]["properties"]["status"]
    jsonschema.validate(cluster.status(sale_name), status_schema)

    # The room taken out of the spec: its figures leave the status.
    await cluster.patch_spec(sale_name, {"waitingRoom": None})
    await eventually(lambda: "waitingRoom" not in cluster.status(sale_name))
    row = await wide_row(cluster, sale_name)
    assert (row["WAITING"], row["ADMITTED"]) == (None, None)


async def test_a_first_come_first_served_room_has_no_draw(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    await start_operator()
    room = {"order": "fifo", "admitPerSecond": 1000, "shoppingSeconds": 600}
    await cluster.create(sale_name, {"sku": "TV-FIFO", "stock": 3, "waitingRoom": room})
    await eventually(room_when(cluster, sale_name, waiting=0))
    platform.stock.join(sale_name, "first")
    platform.stock.join(sale_name, "second")  # lets the first in
    shown = await eventually(room_when(cluster, sale_name, waiting=1, admitted=1))
    assert shown == {"waiting": 1, "admitted": 1, "admissions": 1, "expired": 0}
