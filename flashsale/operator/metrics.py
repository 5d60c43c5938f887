"""The operator's Prometheus gauges: what each sale holds, its phase, and the work queued
for the workers. A registry of its own, so nothing else in the process leaks into it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from flashsale.operator.status import INVALID
from flashsale.phase import Phase
from flashsale.sales import StockFigures

PHASES = [*(str(p) for p in Phase), INVALID]
UNIT_STATES = ("total", "remaining", "reserved", "pending_payment", "paid", "expired")


class SaleMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.units = Gauge(
            "flashsale_sale_units",
            "Units of a sale by state",
            ["sale", "state"],
            registry=self.registry,
        )
        self.phase = Gauge(
            "flashsale_sale_phase",
            "1 for the sale's current phase, 0 for the others",
            ["sale", "phase"],
            registry=self.registry,
        )
        self.backlog = Gauge(
            "flashsale_worker_backlog",
            "Task messages waiting in the Celery queue",
            registry=self.registry,
        )
        self.outbox = Gauge(
            "flashsale_outbox_entries",
            "Reservations of a sale not yet persisted to SQL",
            ["sale"],
            registry=self.registry,
        )

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)

    def record_sale(self, sale: str, phase: str, figures: StockFigures | None) -> None:
        for name in PHASES:
            self.phase.labels(sale, name).set(1 if name == phase else 0)
        if figures is not None:
            for state in UNIT_STATES:
                self.units.labels(sale, state).set(getattr(figures, state))

    def record_outbox(self, sale: str, entries: int) -> None:
        self.outbox.labels(sale).set(entries)

    def forget_sale(self, sale: str) -> None:
        """A deleted sale leaves no stale series behind."""
        for name in PHASES:
            self._remove(self.phase, sale, name)
        for state in UNIT_STATES:
            self._remove(self.units, sale, state)
        self._remove(self.outbox, sale)

    @staticmethod
    def _remove(gauge: Gauge, *labels: str) -> None:
        try:
            gauge.remove(*labels)
        except KeyError:
            pass
