"""Each waiting room's figures on /metrics: the queue's length, the shoppers let in who have
not bought, admissions and expiries per sale, read from Redis for the sales whose spec has
a room, and exported under the same names by the API and the operator."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from flashsale.figures import FiguresReader, PlatformFigures, SaleFigures, families
from flashsale.stock.room import RoomFigures
from tests.conftest import Platform
from tests.helpers.wait import wait_for

ROOM = {"order": "fifo", "admitPerSecond": 1000, "shoppingSeconds": 1, "overbook": 1}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def reader(platform: Platform) -> Any:
    client = redis.Redis.from_url(platform.redis_url)
    yield FiguresReader(platform.sessions, client, client, "flashsale.orders")
    client.close()


def mine(figures: PlatformFigures, sale: str) -> SaleFigures:
    return next(s for s in figures.sales if s.sale == sale)


def exported(figures: PlatformFigures) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families(figures)
        for sample in family.samples
    }


def scraped(base: str) -> Samples:
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def room_samples(found: Samples, sale: str) -> dict[str, float]:
    names = (
        "flashsale_room_waiting",
        "flashsale_room_admitted",
        "flashsale_room_admissions_total",
        "flashsale_room_expiries_total",
    )
    return {n: found[(n, (("sale", sale),))] for n in names if (n, (("sale", sale),)) in found}


def test_the_reader_reads_each_waiting_room_and_only_those(
    platform: Platform, reader: FiguresReader
) -> None:
    sale = platform.sale(stock=2, waitingRoom=ROOM)
    plain = platform.sale(stock=2)
    for user in ("w1", "w2", "w3"):
        platform.stock.join(sale, user)
    statuses = [platform.stock.poll(sale, u).status for u in ("w1", "w2", "w3")]
    assert statuses == ["admitted", "admitted", "waiting"]  # the budget: 2 units x 1

    figures = reader.read()
    assert figures.up, figures.failed
    assert mine(figures, sale).room == RoomFigures(1, 2, 2, 0, None, None)
    assert mine(figures, plain).room is None
    found = exported(figures)
    assert room_samples(found, sale) == {
        "flashsale_room_waiting": 1,
        "flashsale_room_admitted": 2,
        "flashsale_room_admissions_total": 2,
        "flashsale_room_expiries_total": 0,
    }
    assert room_samples(found, plain) == {}  # no room, no series

    # Admissions not used within shoppingSeconds (1 s) expire; the next shopper gets one.
    time.sleep(1.2)
    assert platform.stock.poll(sale, "w3").status == "admitted"
    room = mine(reader.read(), sale).room
    assert room is not None
    assert (room.waiting, room.admitted, room.admissions, room.expiries) == (0, 1, 3, 2)

    # A room taken out of the spec takes its figures with it.
    platform.sale(sale, stock=2)
    assert mine(reader.read(), sale).room is None


def test_a_draw_shows_its_commitment_before_the_start(
    platform: Platform, reader: FiguresReader
) -> None:
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    sale = platform.sale(stock=5, startsAt=later, waitingRoom={"order": "draw"})
    room = mine(reader.read(), sale).room
    assert room is not None and room.draw_seed is None
    assert room.draw_commitment is not None and len(room.draw_commitment) == 64


def test_a_room_that_cannot_be_read_leaves_the_other_figures(
    platform: Platform, reader: FiguresReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    sale = platform.sale(stock=3, waitingRoom=ROOM)

    def unreachable(name: str) -> RoomFigures | None:
        raise redis.ConnectionError("room figures not read")

    monkeypatch.setattr(reader.stock, "room_figures", unreachable)
    figures = reader.read()
    assert figures.failed == ("redis",)
    assert mine(figures, sale).remaining == 3 and mine(figures, sale).room is None
    assert room_samples(exported(figures), sale) == {}  # left out, not shown as 0


def test_the_api_exports_the_room_figures(platform: Platform, api: str) -> None:
    sale = platform.sale(stock=5, waitingRoom=ROOM | {"shoppingSeconds": 600})
    for user in ("a1", "a2", "a3"):
        platform.stock.join(sale, user)  # each join lets in those who joined before

    def shown() -> dict[str, float] | None:
        found = room_samples(scraped(api), sale)
        return found if len(found) == 4 else None  # figures are cached for ~3 s

    assert wait_for(shown, timeout=15) == {
        "flashsale_room_waiting": 1,
        "flashsale_room_admitted": 2,
        "flashsale_room_admissions_total": 2,
        "flashsale_room_expiries_total": 0,
    }
