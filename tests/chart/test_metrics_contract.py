"""The chart's alerts and dashboard and the code agree: every metric an alert rule or a
dashboard panel reads is one that the API's /metrics or the operator's metrics port
exports, so a renamed metric cannot leave an alert silently watching nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import pytest
from prometheus_client import REGISTRY
from prometheus_client.core import Metric

import flashsale.api.metrics  # noqa: F401  (registers the API's counters and histograms)
from flashsale.figures import PlatformFigures, families
from flashsale.operator.metrics import SaleMetrics
from tests.chart.conftest import CHART, Render

METRIC = re.compile(r"\b(flashsale_[a-z0-9_]+)\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
}


def sample_names(found: Iterable[Metric]) -> set[str]:
    """The names a scrape can show for these families (empty ones included)."""
    return {
        family.name + suffix
        for family in found
        if family.name.startswith("flashsale_")
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def exported() -> set[str]:
    api = sample_names(REGISTRY.collect()) | sample_names(families(PlatformFigures()))
    operator = SaleMetrics(platform=PlatformFigures)
    return api | sample_names(operator.registry.collect())


def test_the_exporters_know_the_platform_figures() -> None:
    names = exported()
    for name in (
        "flashsale_outbox_oldest_age_seconds",
        "flashsale_outbox_reservations",
        "flashsale_queue_messages",
        "flashsale_orders",
        "flashsale_dead_letters_total",
        "flashsale_loop_last_success_timestamp_seconds",
        "flashsale_sale_units",
        "flashsale_reservations_total",
        "flashsale_request_duration_seconds_bucket",
        "flashsale_room_waiting",
        "flashsale_room_admitted",
        "flashsale_room_admissions_total",
        "flashsale_room_expiries_total",
    ):
        assert name in names, name


def test_every_alert_reads_an_exported_metric(render: Render) -> None:
    rules = [
        rule
        for obj in render("alerts-values.yaml").all("PrometheusRule")
        for group in obj["spec"]["groups"]
        for rule in group["rules"]
    ]
    assert len(rules) >= 5
    names = exported()
    for rule in rules:
        used = METRIC.findall(rule["expr"])
        assert used, rule["alert"]
        for metric in used:
            assert metric in names, f"alert {rule['alert']} reads {metric}, which nothing exports"


def test_the_dashboard_shows_the_waiting_rooms() -> None:
    dashboard = json.loads((CHART / "dashboards" / "flashsale.json").read_text())
    read = {m for p in dashboard["panels"] for t in p["targets"] for m in METRIC.findall(t["expr"])}
    room = {
        "flashsale_room_waiting",
        "flashsale_room_admitted",
        "flashsale_room_admissions_total",
        "flashsale_room_expiries_total",
    }
    assert room <= exported() and room <= read, room - read


def test_every_dashboard_panel_reads_an_exported_metric() -> None:
    dashboard = json.loads((CHART / "dashboards" / "flashsale.json").read_text())
    names = exported()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for metric in METRIC.findall(target["expr"]):
                assert metric in names, f"panel {panel['title']!r} reads {metric}"


@pytest.mark.parametrize("wrong", ["flashsale_outbox_entries", "flashsale_worker_backlog"])
def test_a_stale_name_would_be_caught(wrong: str) -> None:
    assert wrong not in exported()
