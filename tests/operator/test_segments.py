"""A sale spread over several segments, run by the real operator against the emulator: it
is loaded, reported and cleaned up as one sale (status, the printer columns, the
finalizer), and its segments can change while it sells."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import jsonschema

from flashsale.persist import persist_reservation
from flashsale.stock import Outcome, home, segment_name
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform
from tests.helpers.wait import eventually
from tests.operator.conftest import REFRESH, Cluster, Operator, crd_version

StartOperator = Callable[..., Awaitable[Operator]]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def status_when(
    cluster: Cluster, name: str, generation: int | None = None, **stock: int
) -> Callable[[], dict[str, Any] | None]:
    """The sale's status once it is Active with these stock figures (and describes this
    spec generation, when given)."""

    def check() -> dict[str, Any] | None:
        status = cluster.status(name)
        figures = status.get("stock") or {}
        wanted = (
            status.get("phase") == "Active"
            and all(figures.get(k) == v for k, v in stock.items())
            and generation in (None, status.get("observedGeneration"))
        )
        return status if wanted else None

    return check


def homed(segments: int, index: int) -> str:
    """A new shopper whose home is segment `index` of `segments`."""
    while True:
        user = f"shopper-{uuid.uuid4().hex[:8]}"
        if home(user, segments) == index:
            return user


def buy_and_persist(platform: Platform, sale: str, users: int) -> None:
    """One unit for each of `users` new shoppers, their homes taken in turn over the
    sale's segments, each bought in its home segment and persisted as the worker would."""
    segments = platform.stock.segments(sale)
    for i in range(users):
        order_id = str(uuid.uuid4())
        segment = segment_name(sale, i % segments, segments)
        user = homed(segments, i % segments)
        assert platform.stock.reserve(segment, user, 1, order_id).outcome == Outcome.ACCEPTED
        persist_reservation(platform.sessions, platform.stock, segment, order_id)


def sale_keys(platform: Platform, sale: str) -> list[bytes]:
    """Every Redis key of every segment the sale could have."""
    found = list(platform.redis.scan_iter(match=SaleKeys(sale).pattern, count=1000))
    return found + list(platform.redis.scan_iter(match=f"fs:{{{sale}/*", count=1000))


async def test_a_sale_of_three_segments_is_loaded_and_reported_as_a_whole(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    operator = await start_operator()
    await cluster.create(sale_name, {"sku": "TV-SEG", "stock": 30, "segments": 3})

    status = await eventually(status_when(cluster, sale_name, total=30, remaining=30))
    assert status["stock"] == {
        "total": 30,
        "remaining": 30,
        "reserved": 0,
        "pendingPayment": 0,
        "paid": 0,
        "expired": 0,
    }
    assert status["observedGeneration"] == 1
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "StockLoaded": "True",
        "Ready": "True",
    }
    jsonschema.validate(status, crd_version()["schema"]["openAPIV3Schema"]["properties"]["status"])
    assert f"sale {sale_name} loaded: 30 of 30 units for sale over 3 segments" in operator.output()

    # Units bought in any segment come off the one figure of the sale.
    buy_and_persist(platform, sale_name, 6)
    status = await eventually(
        status_when(cluster, sale_name, total=30, remaining=24, pendingPayment=6)
    )
    assert status["stock"]["reserved"] == 0

    # `kubectl get fs -o wide`: the sale's figures, and its segments in their column.
    table = await cluster.request("GET", cluster.path(), Accept=TABLE)
    columns = [c["name"] for c in table["columnDefinitions"]]
    row = next(r["cells"] for r in table["rows"] if r["cells"][0] == sale_name)
    printed = dict(zip(columns, row, strict=True))
    assert (printed["PHASE"], printed["REMAINING"], printed["PAID"]) == ("Active", 24, 0)
    assert printed["SEGMENTS"] == 3
    wide = {c["name"] for c in table["columnDefinitions"] if c["priority"] == 1}
    assert "SEGMENTS" in wide


async def test_changing_segments_on_a_live_sale_keeps_every_unit(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    await start_operator()
    await cluster.create(sale_name, {"sku": "TV-SEG", "stock": 40, "segments": 3})
    await eventually(status_when(cluster, sale_name, total=40, remaining=40))
    buy_and_persist(platform, sale_name, 5)
    await eventually(status_when(cluster, sale_name, remaining=35, pendingPayment=5))

    sold = 5
    for generation, segments in ((2, 5), (3, 1)):
        await cluster.patch_spec(sale_name, {"segments": segments})
        status = await eventually(
            status_when(cluster, sale_name, generation, total=40, remaining=40 - sold)
        )
        assert status["stock"]["pendingPayment"] == sold
        assert status["stock"]["reserved"] == 0
        # And the sale sells on, over its new segments.
        buy_and_persist(platform, sale_name, 3)
        sold += 3
        await eventually(status_when(cluster, sale_name, remaining=40 - sold, pendingPayment=sold))

    # Refreshes that read Redis while a respread finished never leave an older generation
    # in the status.
    await asyncio.sleep(REFRESH * 4)
    assert cluster.status(sale_name)["observedGeneration"] == 3


async def test_deleting_a_sale_of_several_segments_removes_the_keys_of_every_segment(
    cluster: Cluster, platform: Platform, start_operator: StartOperator, sale_name: str
) -> None:
    await start_operator()
    await cluster.create(sale_name, {"sku": "TV-SEG", "stock": 12, "segments": 4})
    await eventually(status_when(cluster, sale_name, total=12, remaining=12))
    buy_and_persist(platform, sale_name, 4)
    await eventually(status_when(cluster, sale_name, remaining=8, pendingPayment=4))
    assert sale_keys(platform, sale_name)

    await cluster.delete(sale_name)
    await eventually(lambda: cluster.sale(sale_name) is None)
    assert sale_keys(platform, sale_name) == []
    assert len(platform.orders(sale_name)) == 4  # orders stay in SQL
