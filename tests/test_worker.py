"""The real Celery worker consumes the hand-written persist messages and writes each
reservation to SQL once, however often it is delivered; SQL refuses what Redis oversold."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from flashsale.handoff import persist_args, persist_template
from flashsale.orders import OrderClosed, get_order, pay_order
from flashsale.persist import persist_reservation
from flashsale.sales import sale_status
from flashsale.settings import Settings
from flashsale.stock import Outcome
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform, Process, wait_for

QUEUE = Settings().queue


def reserve(platform: Platform, sale: str, user: str, qty: int = 1) -> tuple[str, bytes]:
    """Reserve and enqueue in one script call, as the API does; returns (order, message)."""
    order_id = str(uuid.uuid4())
    template = persist_template(sale, QUEUE)
    result = platform.stock.reserve(sale, user, qty, order_id, queue=QUEUE, message=template)
    assert result.outcome == Outcome.ACCEPTED, result
    assert result.order_id == order_id
    return order_id, template.render([order_id])  # byte for byte what the script pushed


def task_id(message: bytes) -> str:
    return orjson.loads(message)["headers"]["id"]


def wait_succeeded(worker: Process, tid: str, times: int = 1) -> None:
    """Wait until the worker logged `times` successful runs of task message `tid`."""
    wait_for(lambda: worker.output().count(f"[{tid}] succeeded") >= times, timeout=30)


def meta(platform: Platform, sale: str, field: str) -> int | None:
    raw = platform.redis.hget(SaleKeys(sale).meta, field)
    return None if raw is None else int(raw)


def sale_row(platform: Platform, sale: str) -> dict[str, Any]:
    with platform.sessions() as session:
        return dict(
            session.execute(
                text("SELECT stock, live_units FROM sales WHERE name = :s"), {"s": sale}
            )
            .mappings()
            .one()
        )


def test_reservation_message_becomes_an_order(platform: Platform, worker: Process) -> None:
    sale = platform.sale(stock=3)
    order_id, message = reserve(platform, sale, "alice")
    assert meta(platform, sale, "inflight") == 1

    rows = wait_for(lambda: platform.orders(sale), timeout=30)
    assert len(rows) == 1
    row = rows[0]
    assert str(row["id"]) == order_id
    assert (row["user_id"], row["quantity"], row["status"]) == ("alice", 1, "pending_payment")

    wait_succeeded(worker, task_id(message))
    client = platform.redis
    assert client.zscore(SaleKeys(sale).outbox, order_id) is None
    assert meta(platform, sale, "inflight") == 0
    assert client.hget(SaleKeys(sale).reservation(order_id), "state") == b"persisted"
    assert platform.remaining(sale) == 2
    assert sale_row(platform, sale)["live_units"] == 1
    view = get_order(platform.sessions, client, "alice", order_id)
    assert view.status == "pending_payment"


def test_duplicate_delivery_makes_one_order(platform: Platform, worker: Process) -> None:
    sale = platform.sale(stock=3, perUserLimit=2)
    order_id, message = reserve(platform, sale, "bob", qty=2)
    client = platform.redis
    for _ in range(3):
        client.lpush(QUEUE, message)

    # The script's own push plus three redeliveries: four runs of the same message.
    wait_succeeded(worker, task_id(message), times=4)
    assert persist_reservation(platform.sessions, platform.stock, sale, order_id) == (
        "pending_payment"
    )
    assert persist_reservation(platform.sessions, platform.stock, sale, order_id) == (
        "pending_payment"
    )

    rows = platform.orders(sale)
    assert len(rows) == 1, rows
    assert str(rows[0]["id"]) == order_id
    assert rows[0]["quantity"] == 2
    assert meta(platform, sale, "inflight") == 0  # decremented once: 2 -> 0, not below
    assert client.zcard(SaleKeys(sale).outbox) == 0
    assert sale_row(platform, sale)["live_units"] == 2
    assert platform.remaining(sale) == 1
    assert int(client.hget(SaleKeys(sale).held, "bob")) == 2


def test_sql_guard_rejects_what_redis_oversold(platform: Platform, worker: Process) -> None:
    sale = platform.sale(stock=3)
    # Redis still believes in 3 units; SQL knows there is only 1 (Redis lost writes).
    with platform.sessions.begin() as session:
        session.execute(text("UPDATE sales SET stock = 1 WHERE name = :s"), {"s": sale})

    users = ["carol", "dave", "erin"]
    orders = {reserve(platform, sale, user)[0]: user for user in users}
    assert platform.remaining(sale) == 0

    seen_live: list[int] = []

    def all_persisted() -> bool:
        row = sale_row(platform, sale)
        seen_live.append(row["live_units"])
        assert row["live_units"] <= row["stock"], row
        return len(platform.orders(sale)) == 3 and meta(platform, sale, "inflight") == 0

    wait_for(all_persisted, timeout=30, every=0.02)
    assert max(seen_live) <= 1

    rows = platform.orders(sale)
    statuses = sorted(row["status"] for row in rows)
    assert statuses == ["pending_payment", "rejected", "rejected"], rows
    assert sale_row(platform, sale) == {"stock": 1, "live_units": 1}
    client = platform.redis
    assert client.zcard(SaleKeys(sale).outbox) == 0

    rejected = [row for row in rows if row["status"] == "rejected"]
    accepted = next(row for row in rows if row["status"] == "pending_payment")
    for row in rejected:
        oid, user = str(row["id"]), row["user_id"]
        assert orders[oid] == user
        assert client.hget(SaleKeys(sale).reservation(oid), "state") == b"rejected"
        # A rejected order is not live: the user holds nothing.
        assert client.hget(SaleKeys(sale).held, user) is None
        with pytest.raises(OrderClosed) as closed:
            pay_order(platform.sessions, platform.stock, user, oid)
        assert closed.value.status == "rejected"
        assert get_order(platform.sessions, client, user, oid).status == "rejected"

    assert (
        pay_order(platform.sessions, platform.stock, accepted["user_id"], str(accepted["id"]))
        == "paid"
    )
    # Redelivering a rejected order's message changes nothing.
    assert persist_reservation(platform.sessions, platform.stock, sale, str(rejected[0]["id"])) == (
        "rejected"
    )
    time.sleep(0.1)
    assert sorted(r["status"] for r in platform.orders(sale)) == ["paid", "rejected", "rejected"]
    assert sale_row(platform, sale) == {"stock": 1, "live_units": 1}
    assert meta(platform, sale, "inflight") == 0


def test_status_figures_add_up_while_workers_persist(platform: Platform, worker) -> None:
    """Read while orders move from Redis to SQL: each unit is counted exactly once."""
    total = 300
    sale = platform.sale(stock=total, perUserLimit=1)
    for i in range(200):
        order = str(uuid.uuid4())
        platform.stock.reserve(sale, f"s{i}", 1, order, queue=QUEUE)
    polls = 0
    while True:
        figures = sale_status(platform.sessions, platform.stock, sale).stock
        polls += 1
        assert (
            figures.paid + figures.pending_payment + figures.reserved + figures.remaining
        ) == total, figures
        if figures.reserved == 0:
            break
    assert figures.pending_payment == 200 and polls > 1


def legacy_message(sale: str, order_id: str) -> bytes:
    """A message of the one-order task of earlier releases, as their API pushed it."""
    body = orjson.dumps([[sale, order_id], {}, {"callbacks": None, "errbacks": None}])
    task_id = str(uuid.uuid4())
    return orjson.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "task": "flashsale.persist_order", "id": task_id},
            "properties": {
                "correlation_id": task_id,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": QUEUE},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    )


def test_a_message_of_the_earlier_one_order_task_is_persisted(
    platform: Platform, worker: Process
) -> None:
    """Messages queued by an API of the previous release during an upgrade still count."""
    sale = platform.sale(stock=2)
    order_id = str(uuid.uuid4())
    assert platform.stock.reserve(sale, "gus", 1, order_id).outcome is Outcome.ACCEPTED
    assert persist_args(legacy_message(sale, order_id)) == (sale, [order_id])
    platform.redis.lpush(QUEUE, legacy_message(sale, order_id))
    rows = wait_for(lambda: platform.orders(sale), timeout=30)
    assert [str(row["id"]) for row in rows] == [order_id]
    wait_for(lambda: meta(platform, sale, "inflight") == 0, timeout=30)
