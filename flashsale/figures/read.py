"""Reading the platform figures: what each sale holds in Redis and PostgreSQL, the work
waiting for the workers, and the runs of the reaper and the sweeper, in one go.

Both exporters use this module, so one figure has one name and one meaning wherever it is
scraped: the API's `/metrics` and the operator's metrics port. A stalled worker shows here
and nowhere else: purchases still get `202` and `/readyz` stays ready, but the outbox
grows and its oldest entry ages (`flashsale_outbox_oldest_age_seconds`, the persist lag).

One read costs one Redis pipeline (every sale's stock and outbox, and Redis' clock), one
more for each sale with a waiting room (its queue, admissions and expiries), the loops'
run records (flashsale/runs.py), one LLEN on the broker and four short SQL statements
(orders by sale and status with the units returned, the sales with a waiting room,
whether the dead-letter table exists, dead letters by sale). Each source is read on its
own: PostgreSQL away still leaves the persist lag of the sales read before, which is when
it matters most.
Reads are cached for a few seconds, so several Prometheus servers (or a scrape of every
API replica) cost one read per process per interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import redis
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from flashsale import clients
from flashsale.clients import Role
from flashsale.db.models import OrderStatus
from flashsale.runs import RunFigures, read_runs
from flashsale.settings import Settings
from flashsale.stock import Backlog, Stock
from flashsale.stock.room import RoomFigures

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
# The sales with a waiting room: only theirs are read from Redis (a pipeline each).
SALES_WITH_A_ROOM = text("SELECT name FROM sales WHERE spec -> 'waitingRoom' IS NOT NULL")
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
    segments: int | None = None  # hash slots its stock is spread over
    loans: int | None = None  # units lent between its segments, not yet settled
    oldest_loan_age_seconds: float | None = None
    room: RoomFigures | None = None  # its waiting room's (None: no room, or Redis not read)


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
    rooms: tuple[str, ...]  # the sales with a waiting room


class FiguresReader:
    """Reads the platform figures from Redis, the broker and PostgreSQL, with short timeouts
    of its own so that a scrape never waits long for a server that is away."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: clients.StockRedis,
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
        self._rooms: tuple[str, ...] = ()  # and those of them with a waiting room

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: sessionmaker[Session], timeout: float = TIMEOUT_SECONDS
    ) -> FiguresReader:
        client = clients.stock_redis(settings, Role.PROBE)
        same = (settings.effective_broker_url or settings.redis_url) == settings.redis_url
        broker = (
            client
            if same and isinstance(client, redis.Redis)
            else clients.broker_redis(settings, Role.PROBE)
        )
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
            self._known, self._rooms = sql.names, sql.rooms
        except (SQLAlchemyError, OSError) as exc:
            failed.append("database")
            log.warning("platform figures: PostgreSQL not read: %s", _short(exc))
        names = sql.names if sql is not None else self._known
        in_redis: dict[str, Backlog] = {}
        loops: dict[str, RunFigures] = {}
        rooms: dict[str, RoomFigures] = {}
        try:
            in_redis, loops = self._read_redis(names)
            rooms = self._read_rooms(sql.rooms if sql is not None else self._rooms)
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
            b = in_redis.get(name)
            sales.append(
                SaleFigures(
                    sale=name,
                    remaining=b.remaining if b else None,
                    outbox=b.outbox if b else None,
                    oldest_age_seconds=b.oldest_age_seconds if b else None,
                    segments=b.segments if b else None,
                    loans=b.loans if b else None,
                    oldest_loan_age_seconds=b.oldest_loan_age_seconds if b else None,
                    orders=sql.orders.get(name, {}) if sql else None,
                    order_units=sql.units.get(name, {}) if sql else None,
                    returned_units=sql.returned.get(name, 0) if sql else None,
                    room=rooms.get(name),
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
            rooms = tuple(sorted(str(name) for name in session.scalars(SALES_WITH_A_ROOM)))
        return _SqlFigures(tuple(sorted(orders)), orders, units, returned, dead, rooms)

    def _read_redis(self, names: Iterable[str]) -> tuple[dict[str, Backlog], dict[str, RunFigures]]:
        return self.stock.backlogs(names), read_runs(self.client)

    def _read_rooms(self, names: Iterable[str]) -> dict[str, RoomFigures]:
        """The waiting rooms' figures; a sale whose room is gone from Redis (deleted, or
        the room taken out of its spec) has none."""
        found = {}
        for name in names:
            figures = self.stock.room_figures(name)
            if figures is not None:
                found[name] = figures
        return found


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
