"""Platform figures: what each sale holds in Redis and PostgreSQL, the work waiting for the
workers, and the runs of the reaper and the sweeper, read in one go for Prometheus.

Both exporters use this module, so one figure has one name and one meaning wherever it is
scraped: the API's `/metrics` and the operator's metrics port. A stalled worker shows here
and nowhere else: purchases still get `202` and `/readyz` stays ready, but the outbox
grows and its oldest entry ages (`flashsale_outbox_oldest_age_seconds`, the persist lag).

One read costs one Redis pipeline (every sale's stock and outbox, and Redis' clock), the
loops' run records (flashsale/runs.py), one LLEN on the broker and three short SQL
statements (orders by sale and status with the units returned, whether the dead-letter
table exists, dead letters by sale). Each source is read on its own: PostgreSQL away
still leaves the persist lag of the sales read before, which is when it matters most.
Reads are cached for a few seconds, so several Prometheus servers (or a scrape of every
API replica) cost one read per process per interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from flashsale import clients
from flashsale.clients import Role
from flashsale.db.models import OrderStatus
from flashsale.runs import RunFigures, read_runs
from flashsale.settings import Settings
from flashsale.stock import Stock

log = logging.getLogger(__name__)

ORDER_STATUSES = tuple(str(s) for s in OrderStatus)
TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 3.0

# Orders by sale and status, with the units already given back to Redis, and every sale
# (also those without orders): one statement over the `orders` index on `sale`.
ORDERS_BY_SALE = text(
    """
    SELECT s.name, o.status, count(o.id), coalesce(sum(o.quantity), 0),
           coalesce(sum(o.quantity) FILTER (WHERE o.restored_at IS NOT NULL), 0)
    FROM sales s LEFT JOIN orders o ON o.sale = s.name
    GROUP BY s.name, o.status
    """
)
DEAD_LETTERS_TABLE = text("SELECT to_regclass('dead_letters') IS NOT NULL")
DEAD_LETTERS_BY_SALE = text("SELECT sale, count(*) FROM dead_letters GROUP BY sale")


@dataclass(frozen=True, slots=True)
class SaleFigures:
    sale: str
    remaining: int | None = None  # units for sale in Redis (None: Redis not read)
    outbox: int | None = None  # reservations accepted, not yet in SQL
    oldest_age_seconds: float | None = None  # age of the oldest of them (0: none)
    orders: Mapping[str, int] | None = None  # order rows by status (None: SQL not read)
    order_units: Mapping[str, int] | None = None  # units of those orders by status
    returned_units: int | None = None  # units of expired orders given back to Redis


@dataclass(frozen=True, slots=True)
class PlatformFigures:
    sales: tuple[SaleFigures, ...] = ()
    queue: str = ""
    queue_messages: int | None = None  # task messages waiting for a worker
    loops: Mapping[str, RunFigures] = field(default_factory=dict)
    # Dead-letter rows by sale; "" collects those of no known sale (or none at all).
    dead_letters: Mapping[str, int] | None = None
    failed: tuple[str, ...] = ()  # the sources that did not answer: redis, database, broker

    @property
    def up(self) -> bool:
        return not self.failed


@dataclass(frozen=True, slots=True)
class _SqlFigures:
    names: tuple[str, ...]
    orders: dict[str, dict[str, int]]
    units: dict[str, dict[str, int]]
    returned: dict[str, int]
    dead_letters: dict[str, int]


class FiguresReader:
    """Reads the platform figures from Redis, the broker and PostgreSQL, with short timeouts
    of its own so that a scrape never waits long for a server that is away."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: redis.Redis,
        broker: redis.Redis,
        queue: str,
        statement_timeout_ms: int = int(TIMEOUT_SECONDS * 1000),
    ) -> None:
        self.sessions = sessions
        self.client = client  # the stock Redis: the loops' run records
        self.stock = Stock(client)
        self.broker = broker
        self.queue = queue
        self.statement_timeout_ms = statement_timeout_ms
        self._known: tuple[str, ...] = ()  # sale names of the last good SQL read

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: sessionmaker[Session], timeout: float = TIMEOUT_SECONDS
    ) -> FiguresReader:
        client = clients.stock_redis(settings, Role.FIGURES)
        same = (settings.effective_broker_url or settings.redis_url) == settings.redis_url
        broker = client if same else clients.broker_redis(settings, Role.FIGURES)
        return cls(sessions, client, broker, settings.queue, int(timeout * 1000))

    def close(self) -> None:
        self.client.close()
        if self.broker is not self.client:
            self.broker.close()

    def read(self) -> PlatformFigures:
        failed: list[str] = []
        sql: _SqlFigures | None = None
        try:
            sql = self._read_sql()
            self._known = sql.names
        except (SQLAlchemyError, OSError) as exc:
            failed.append("database")
            log.warning("platform figures: PostgreSQL not read: %s", _short(exc))
        names = sql.names if sql is not None else self._known
        in_redis: dict[str, tuple[int, int, float]] = {}
        loops: dict[str, RunFigures] = {}
        try:
            in_redis, loops = self._read_redis(names)
        except (redis.RedisError, OSError) as exc:
            failed.append("redis")
            log.warning("platform figures: Redis not read: %s", _short(exc))
        queue_messages: int | None = None
        try:
            queue_messages = int(self.broker.llen(self.queue))
        except (redis.RedisError, OSError) as exc:
            failed.append("broker")
            log.warning("platform figures: broker not read: %s", _short(exc))
        sales = []
        for name in names:
            remaining, outbox, age = in_redis.get(name, (None, None, None))
            sales.append(
                SaleFigures(
                    sale=name,
                    remaining=remaining,
                    outbox=outbox,
                    oldest_age_seconds=age,
                    orders=sql.orders.get(name, {}) if sql else None,
                    order_units=sql.units.get(name, {}) if sql else None,
                    returned_units=sql.returned.get(name, 0) if sql else None,
                )
            )
        return PlatformFigures(
            sales=tuple(sales),
            queue=self.queue,
            queue_messages=queue_messages,
            loops=loops,
            dead_letters=sql.dead_letters if sql else None,
            failed=tuple(failed),
        )

    def _read_sql(self) -> _SqlFigures:
        orders: dict[str, dict[str, int]] = {}
        units: dict[str, dict[str, int]] = {}
        returned: dict[str, int] = {}
        dead: dict[str, int] = {}
        with self.sessions() as session, session.begin():
            # Bounded like the Redis reads: a locked or slow table fails this read only.
            session.execute(text(f"SET LOCAL statement_timeout = {self.statement_timeout_ms}"))
            for name, status, count, quantity, restored in session.execute(ORDERS_BY_SALE):
                orders.setdefault(name, {})
                units.setdefault(name, {})
                returned[name] = returned.get(name, 0) + int(restored)
                if status is not None:
                    orders[name][status] = int(count)
                    units[name][status] = int(quantity)
            # The dead-letter table came with a later migration: a database not yet
            # upgraded simply has none.
            if session.scalar(DEAD_LETTERS_TABLE):
                for sale, count in session.execute(DEAD_LETTERS_BY_SALE):
                    key = sale if sale in orders else ""
                    dead[key] = dead.get(key, 0) + int(count)
        return _SqlFigures(tuple(sorted(orders)), orders, units, returned, dead)

    def _read_redis(
        self, names: Iterable[str]
    ) -> tuple[dict[str, tuple[int, int, float]], dict[str, RunFigures]]:
        figures = {
            name: (b.remaining, b.outbox, b.oldest_age_seconds)
            for name, b in self.stock.backlogs(names).items()
        }
        return figures, read_runs(self.client)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


class CachedFigures:
    """The last read, for `max_age` seconds. Scrapes that arrive together wait for one read
    instead of each starting their own."""

    def __init__(self, read: Callable[[], PlatformFigures], max_age: float = CACHE_SECONDS) -> None:
        self._read = read
        self.max_age = max_age
        self._lock = threading.Lock()
        self._last: tuple[float, PlatformFigures] | None = None

    def __call__(self) -> PlatformFigures:
        with self._lock:
            if self._last is None or time.monotonic() - self._last[0] >= self.max_age:
                try:
                    figures = self._read()
                except Exception as exc:  # an exporter shows a failed read, never raises
                    log.warning("platform figures not read: %s", _short(exc))
                    figures = PlatformFigures(failed=("unexpected",))
                self._last = (time.monotonic(), figures)
            return self._last[1]


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
    for sale in figures.sales:
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
    found += [outbox, lag, orders, order_units, returned, dead, queue]
    found += [runs, failures, last_run, last_ok]
    return found


def exported_names(sale_units: bool = True) -> set[str]:
    """Every sample name the collector can export (counters with `_total`)."""
    names = set()
    for family in families(PlatformFigures(), sale_units=sale_units):
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names
