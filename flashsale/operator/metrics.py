"""The operator's Prometheus gauges: what each sale holds and its phase, as its status says,
and the platform figures (flashsale/figures: outbox and persist lag, orders, queue,
loops), read when scraped, under the same names as on the API's /metrics. A registry of
its own, so nothing else in the process leaks into it."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from flashsale.figures import PlatformCollector, PlatformFigures
from flashsale.operator.status import INVALID
from flashsale.phase import Phase
from flashsale.sales import StockFigures

PHASES = [*(str(p) for p in Phase), INVALID]
UNIT_STATES = ("total", "remaining", "reserved", "pending_payment", "paid", "expired")


class SaleMetrics:
    def __init__(self, platform: Callable[[], PlatformFigures] | None = None) -> None:
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
        if platform is not None:
            # flashsale_sale_units is the gauge above, with every state from the status.
            self.registry.register(PlatformCollector(platform, sale_units=False))

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)

    def record_sale(self, sale: str, phase: str, figures: StockFigures | None) -> None:
        for name in PHASES:
            self.phase.labels(sale, name).set(1 if name == phase else 0)
        if figures is not None:
            for state in UNIT_STATES:
                self.units.labels(sale, state).set(getattr(figures, state))

    def forget_sale(self, sale: str) -> None:
        """A deleted sale leaves no stale series behind."""
        for name in PHASES:
            self._remove(self.phase, sale, name)
        for state in UNIT_STATES:
            self._remove(self.units, sale, state)

    @staticmethod
    def _remove(gauge: Gauge, *labels: str) -> None:
        try:
            gauge.remove(*labels)
        except KeyError:
            pass
