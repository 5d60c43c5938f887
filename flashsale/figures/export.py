"""The platform figures as Prometheus metric families, computed when scraped.

Both exporters use this module, so one figure has one name and one meaning wherever it is
scraped: the API's `/metrics` and the operator's metrics port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flashsale.figures.read import ORDER_STATUSES, PlatformFigures


class PlatformCollector(Collector):
    """Prometheus collector of the platform figures, computed when scraped.

    `sale_units=False` leaves out `flashsale_sale_units{state="remaining"}` for an
    exporter that has that family already (the operator exports every state of it from
    the sale's status)."""

    def __init__(self, figures: Callable[[], PlatformFigures], sale_units: bool = True) -> None:
        self.figures = figures
        self.sale_units = sale_units

    def describe(self) -> list[Metric]:
        return []  # names are not checked at registration: reading here would cost a read

    def collect(self) -> Iterator[Metric]:
        return iter(families(self.figures(), sale_units=self.sale_units))


def families(figures: PlatformFigures, sale_units: bool = True) -> list[Metric]:
    """The metric families of one read; a figure whose source did not answer is left out
    (not shown as 0), and `flashsale_platform_figures_up` says so."""
    up = GaugeMetricFamily(
        "flashsale_platform_figures_up",
        "1 when Redis, the broker and PostgreSQL all answered the last read of the figures",
        value=1 if figures.up else 0,
    )
    remaining = GaugeMetricFamily(
        "flashsale_sale_units", "Units of a sale by state", labels=["sale", "state"]
    )
    outbox = GaugeMetricFamily(
        "flashsale_outbox_reservations",
        "Reservations accepted (202) and not yet persisted to PostgreSQL",
        labels=["sale"],
    )
    lag = GaugeMetricFamily(
        "flashsale_outbox_oldest_age_seconds",
        "Age of the oldest reservation not yet persisted (persist lag; 0 when none waits)",
        labels=["sale"],
    )
    orders = GaugeMetricFamily(
        "flashsale_orders", "Order rows in PostgreSQL by status", labels=["sale", "status"]
    )
    order_units = GaugeMetricFamily(
        "flashsale_order_units",
        "Units of the order rows in PostgreSQL by status",
        labels=["sale", "status"],
    )
    returned = CounterMetricFamily(
        "flashsale_returned_units",
        "Units of expired orders given back to the sale's stock",
        labels=["sale"],
    )
    dead = CounterMetricFamily(
        "flashsale_dead_letters",
        "Reservations and task messages put aside as never storable (rows of dead_letters)",
        labels=["sale"],
    )
    segments = GaugeMetricFamily(
        "flashsale_sale_segments",
        "Hash slots (Redis Cluster masters at most) a sale's stock is spread over",
        labels=["sale"],
    )
    loans = GaugeMetricFamily(
        "flashsale_sale_loan_units",
        "Units lent between a sale's segments and not yet settled (counted as remaining)",
        labels=["sale"],
    )
    loan_age = GaugeMetricFamily(
        "flashsale_sale_oldest_loan_age_seconds",
        "Age of the oldest unsettled loan between a sale's segments (the sweep settles "
        "those whose borrower went away after 30 s)",
        labels=["sale"],
    )
    waiting = GaugeMetricFamily(
        "flashsale_room_waiting",
        "Shoppers in a sale's waiting room (the queue's length)",
        labels=["sale"],
    )
    admitted = GaugeMetricFamily(
        "flashsale_room_admitted",
        "Shoppers a sale's waiting room let in who have not bought yet (at most remaining "
        "units x overbook)",
        labels=["sale"],
    )
    admissions = CounterMetricFamily(
        "flashsale_room_admissions",
        "Shoppers a sale's waiting room let in",
        labels=["sale"],
    )
    expiries = CounterMetricFamily(
        "flashsale_room_expiries",
        "Admissions that ran out unused after shoppingSeconds (their place in the budget "
        "went to the next shopper)",
        labels=["sale"],
    )
    for sale in figures.sales:
        if sale.room is not None:
            waiting.add_metric([sale.sale], sale.room.waiting)
            admitted.add_metric([sale.sale], sale.room.admitted)
            admissions.add_metric([sale.sale], sale.room.admissions)
            expiries.add_metric([sale.sale], sale.room.expiries)
        if sale.segments is not None:
            segments.add_metric([sale.sale], sale.segments)
        if sale.loans is not None:
            loans.add_metric([sale.sale], sale.loans)
        if sale.oldest_loan_age_seconds is not None:
            loan_age.add_metric([sale.sale], sale.oldest_loan_age_seconds)
        if sale.remaining is not None:
            remaining.add_metric([sale.sale, "remaining"], sale.remaining)
        if sale.outbox is not None:
            outbox.add_metric([sale.sale], sale.outbox)
        if sale.oldest_age_seconds is not None:
            lag.add_metric([sale.sale], sale.oldest_age_seconds)
        if sale.orders is not None and sale.order_units is not None:
            for status in ORDER_STATUSES:
                orders.add_metric([sale.sale, status], sale.orders.get(status, 0))
                order_units.add_metric([sale.sale, status], sale.order_units.get(status, 0))
        if sale.returned_units is not None:
            returned.add_metric([sale.sale], sale.returned_units)
        if figures.dead_letters is not None:
            dead.add_metric([sale.sale], figures.dead_letters.get(sale.sale, 0))
    if figures.dead_letters is not None:
        # Those of no known sale (a task message that could not be read): always there,
        # so that `increase()` sees the first one.
        dead.add_metric([""], figures.dead_letters.get("", 0))
    queue = GaugeMetricFamily(
        "flashsale_queue_messages",
        "Task messages waiting in the Celery queue for a worker",
        labels=["queue"],
    )
    if figures.queue_messages is not None:
        queue.add_metric([figures.queue], figures.queue_messages)
    runs = CounterMetricFamily(
        "flashsale_loop_runs", "Runs of the reaper and sweeper loops", labels=["component"]
    )
    failures = CounterMetricFamily(
        "flashsale_loop_failures",
        "Runs of the reaper and sweeper loops that failed",
        labels=["component"],
    )
    last_run = GaugeMetricFamily(
        "flashsale_loop_last_run_timestamp_seconds",
        "When the loop last ran (Unix time)",
        labels=["component"],
    )
    last_ok = GaugeMetricFamily(
        "flashsale_loop_last_success_timestamp_seconds",
        "When the loop last ran without failing (Unix time)",
        labels=["component"],
    )
    for component, loop in sorted(figures.loops.items()):
        runs.add_metric([component], loop.runs)
        failures.add_metric([component], loop.failures)
        if loop.last_run_ms:  # 0: never ran; left out, so `absent()` tells
            last_run.add_metric([component], loop.last_run_ms / 1000)
        if loop.last_ok_ms:
            last_ok.add_metric([component], loop.last_ok_ms / 1000)
    found: list[Metric] = [up]
    if sale_units:
        found.append(remaining)
    found += [outbox, lag, segments, loans, loan_age, orders, order_units, returned, dead, queue]
    found += [waiting, admitted, admissions, expiries]
    found += [runs, failures, last_run, last_ok]
    return found


def exported_names(sale_units: bool = True) -> set[str]:
    """Every sample name the collector can export (counters with `_total`)."""
    names = set()
    for family in families(PlatformFigures(), sale_units=sale_units):
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names
