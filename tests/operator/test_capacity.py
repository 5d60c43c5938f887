"""Desired replicas and worker pace: pure functions of the specs, the lead time and the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flashsale.operator.capacity import (
    Replicas,
    desired_replicas,
    holds_capacity,
    live_specs,
    replicas_patch,
    worker_rate,
)
from flashsale.spec import SaleSpec

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LEAD = timedelta(minutes=5)
BASELINE = Replicas(api=1, worker=1)


def spec(**fields: Any) -> SaleSpec:
    return SaleSpec.model_validate({"sku": "S", "stock": 10, **fields})


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize(
    ("window", "holds"),
    [
        ({}, True),  # open now, open-ended
        ({"startsAt": at(10)}, False),  # further away than the lead time
        ({"startsAt": at(5)}, True),  # exactly the lead time ahead
        ({"startsAt": at(3), "endsAt": at(60)}, True),
        ({"startsAt": at(-30), "endsAt": at(1)}, True),
        ({"startsAt": at(-30), "endsAt": at(0)}, False),  # endsAt is exclusive
        ({"endsAt": at(-1)}, False),
        ({"paused": True}, True),  # a pause is short: keep the capacity
    ],
)
def test_a_sale_holds_capacity_from_the_lead_time_until_it_ends(
    window: dict[str, Any], holds: bool
) -> None:
    assert holds_capacity(spec(**window), NOW, LEAD) is holds


def test_no_sale_means_the_baseline() -> None:
    assert desired_replicas([], NOW, LEAD, BASELINE) == BASELINE
    ended = spec(endsAt=at(-1), api={"replicas": 9})
    assert desired_replicas([ended], NOW, LEAD, BASELINE) == BASELINE


def test_the_biggest_sale_in_its_window_sets_each_deployment() -> None:
    sales = [
        spec(api={"replicas": 4}, worker={"replicas": 1}),
        spec(startsAt=at(2), api={"replicas": 2}, worker={"replicas": 3}),
        spec(startsAt=at(60), api={"replicas": 50}, worker={"replicas": 50}),  # not yet
    ]
    assert desired_replicas(sales, NOW, LEAD, BASELINE) == Replicas(api=4, worker=3)


def test_never_below_the_baseline() -> None:
    small = spec(api={"replicas": 0}, worker={"replicas": 0})
    assert desired_replicas([small], NOW, LEAD, Replicas(2, 3)) == Replicas(2, 3)


def test_worker_pace_adds_up_the_sales_and_splits_it_across_workers() -> None:
    sales = [
        spec(worker={"replicas": 2, "ordersPerSecond": 300}),
        spec(worker={"replicas": 1, "ordersPerSecond": 100}),
        spec(startsAt=at(60), worker={"ordersPerSecond": 9000}),  # not in its window
    ]
    assert worker_rate(sales, NOW, LEAD, workers=4) == 100.0
    assert worker_rate(sales, NOW, LEAD, workers=0) == 400.0  # no division by zero
    assert worker_rate([], NOW, LEAD, workers=2) is None


def test_the_deployment_patch_sets_replicas_only() -> None:
    assert replicas_patch(5) == {"spec": {"replicas": 5}}


def test_sales_being_deleted_or_unparseable_ask_for_nothing() -> None:
    items = [
        {"metadata": {"name": "a"}, "spec": {"sku": "A", "stock": 1, "api": {"replicas": 7}}},
        {"metadata": {"name": "b", "deletionTimestamp": "2026-11-27T09:00:00Z"}, "spec": {}},
        {"metadata": {"name": "c"}, "spec": {"sku": "C", "stock": -1}},
        {"metadata": {"name": "d"}},
    ]
    specs = live_specs(items)
    assert [s.sku for s in specs] == ["A"]
    assert desired_replicas(specs, NOW, LEAD, BASELINE).api == 7
