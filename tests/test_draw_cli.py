"""`flashsale sale draw NAME [--verify]` as users type it: the commitment before the start
and nothing that gives the order away, the seed and the order after, a verification that
recomputes every drawn place, and one that catches a place changed in Redis."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime

import pytest

from flashsale.stock.keys import SaleKeys
from flashsale.stock.room import DRAW_PLACES, draw_place
from tests.conftest import Platform
from tests.helpers.room import at
from tests.test_cli import run

EARLY = [f"early-{i}" for i in range(6)]
LATE = ["late-1", "late-2"]


def test_before_the_start_only_the_commitment_shows(platform: Platform) -> None:
    sale = platform.sale(
        stock=3, startsAt=at(3600), waitingRoom={"opensAt": at(-60), "order": "draw"}
    )
    for user in EARLY:
        assert platform.stock.join(sale, user).status == "waiting"
    figures = platform.stock.room_figures(sale)
    assert figures is not None and figures.draw_commitment is not None

    before = run(platform, "sale", "draw", sale)
    assert before.returncode == 0, before.stderr
    assert f"Commitment:  {figures.draw_commitment}" in before.stdout
    assert "Seed:        not revealed until the sale starts" in before.stdout
    assert "Entrants:    6" in before.stdout
    assert not any(user in before.stdout for user in EARLY)  # the order stays secret
    document = json.loads(run(platform, "sale", "draw", sale, "-o", "json").stdout)
    assert document == {
        "sale": sale,
        "commitment": figures.draw_commitment,
        "seed": None,
        "entrants": 6,
    }
    early = run(platform, "sale", "draw", sale, "--verify")
    assert early.returncode == 2
    assert f"the draw of {sale!r} is not revealed yet" in early.stderr
    assert figures.draw_commitment in early.stderr
    assert early.stdout == ""


@pytest.fixture(scope="module")
def drawn(platform: Platform) -> tuple[str, str]:
    """A draw sale that started after six shoppers joined, and two who came after; its
    name and the commitment it showed before the start."""
    starts = time.time() + 1.5
    sale = platform.sale(
        stock=3,
        startsAt=datetime.fromtimestamp(starts, UTC).isoformat(),
        waitingRoom={"opensAt": at(-60), "order": "draw", "admitPerSecond": 1000},
    )
    for user in EARLY:
        assert platform.stock.join(sale, user).status == "waiting"
    figures = platform.stock.room_figures(sale)
    assert figures is not None and figures.draw_seed is None and figures.draw_commitment
    time.sleep(max(0.0, starts - time.time()) + 0.3)
    for user in LATE:
        platform.stock.join(sale, user)
    return sale, figures.draw_commitment


def test_after_the_start_the_seed_matches_the_commitment_and_gives_the_order(
    platform: Platform, drawn: tuple[str, str]
) -> None:
    sale, commitment = drawn
    out = run(platform, "sale", "draw", sale, "-o", "json")
    assert out.returncode == 0, out.stderr
    document = json.loads(out.stdout)
    seed = document["seed"]
    assert document["commitment"] == commitment
    assert hashlib.sha256(seed.encode()).hexdigest() == commitment
    by_seed = sorted(EARLY, key=lambda user: (draw_place(seed, user), user))
    assert [e["user"] for e in document["entrants"]] == by_seed + LATE
    assert [e["position"] for e in document["entrants"]] == list(range(1, 9))
    assert all(e["drawn"] for e in document["entrants"][:6])
    late = document["entrants"][6:]
    assert [(e["drawn"], e["place"] >= DRAW_PLACES) for e in late] == [(False, True)] * 2
    assert late[0]["arrival"] < late[1]["arrival"]

    table = run(platform, "sale", "draw", sale)
    assert table.returncode == 0, table.stderr
    assert f"Seed:        {seed}" in table.stdout
    assert "Entrants:    8 (6 in the draw, 2 after the start)" in table.stdout
    rows = [line.split() for line in table.stdout.split("\n\n", 1)[1].splitlines()]
    assert rows[0] == ["POSITION", "USER", "PLACE"]
    assert [row[1] for row in rows[1:]] == by_seed + LATE
    assert rows[1][2] == str(draw_place(seed, by_seed[0]))
    assert rows[-1][2] == "arrival"


def test_verify_recomputes_every_drawn_place(platform: Platform, drawn: tuple[str, str]) -> None:
    sale, commitment = drawn
    out = run(platform, "sale", "draw", sale, "--verify")
    assert out.returncode == 0, out.stderr
    assert "OK: the seed matches the commitment and gives all 6 drawn places" in out.stdout
    # Against the commitment published before the start, as a shopper would have kept it.
    kept = run(platform, "sale", "draw", sale, "--verify", "--commitment", commitment.upper())
    assert kept.returncode == 0, kept.stdout
    other = "0" * 64
    wrong = run(platform, "sale", "draw", sale, "--verify", "--commitment", other, "-o", "json")
    assert wrong.returncode == 1
    document = json.loads(wrong.stdout)
    assert document["verified"] is False
    assert document["differences"] == [
        f"the seed's SHA-256 is {commitment}, not the commitment {other}"
    ]


def test_verify_catches_a_place_changed_in_redis(platform: Platform) -> None:
    sale = platform.sale(
        stock=3, startsAt=at(1.5), waitingRoom={"opensAt": at(-60), "order": "draw"}
    )
    for user in ("ann", "bob", "cy"):
        platform.stock.join(sale, user)
    time.sleep(2)
    assert run(platform, "sale", "draw", sale, "--verify").returncode == 0

    joined = SaleKeys(sale).room_joined
    assert joined == f"fs:{{{sale}}}:room:joined"
    place = platform.redis.zscore(joined, "bob")
    assert place is not None
    platform.redis.zadd(joined, {"bob": 1}, xx=True)  # bob moved to the front
    out = run(platform, "sale", "draw", sale, "--verify")
    assert out.returncode == 1
    assert f"DIFFERS: 'bob' has place 1; the seed gives {int(place)}" in out.stdout
    assert out.stdout.rstrip().endswith("FAILED: 1 difference")
    assert "ann" not in out.stdout and "cy" not in out.stdout  # only what differs

    as_json = json.loads(run(platform, "sale", "draw", sale, "--verify", "-o", "json").stdout)
    assert as_json["verified"] is False and len(as_json["differences"]) == 1
    assert as_json["entrants"][0] == {"position": 1, "user": "bob", "place": 1, "drawn": True}


@pytest.mark.parametrize("verify", [[], ["--verify"]])
def test_a_sale_without_a_draw_has_nothing_to_show(platform: Platform, verify: list[str]) -> None:
    fifo = platform.sale(stock=2, waitingRoom={"order": "fifo"})
    out = run(platform, "sale", "draw", fifo, *verify)
    assert out.returncode == 2
    assert f"sale {fifo!r} queues in arrival order (order: fifo): it has no draw" in out.stderr

    plain = platform.sale(stock=2)
    out = run(platform, "sale", "draw", plain, *verify)
    assert out.returncode == 2
    assert f"sale {plain!r} has no waiting room, so no draw" in out.stderr

    missing = run(platform, "sale", "draw", "no-such-sale", *verify)
    assert missing.returncode == 1 and "no sale named 'no-such-sale'" in missing.stderr
