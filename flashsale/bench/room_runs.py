"""The waiting room's series, on the default server right after its sold-out path: joins
and polls per second beside that path, and purchases on a queued sale beside purchases
on an unqueued one, measured level by level in turn.

- joins: `POST /v1/sales/{sale}/queue`, each from a shopper who has not joined that sale:
  a pool of `join_users` tokens, and a fresh sale for every wrk run (the warm-up too).
  The share of joins that were first joins is measured (the queue's growth over the
  202s) and kept with the figure. They run last: their fresh tokens fill the API's cache
  of verified tokens (65,536) and clear it, which would slow the other figures.
- polls: `GET` of the same by the 10,000 shoppers of the other figures, all joined
  beforehand; the gate lets in `admitPerSecond` of them meanwhile, as in a live room.
- purchases: the reservation figure's load (JWT, Idempotency-Key, stock never runs out)
  on a sale without a room, then on one whose room has let every shopper in (a high
  admitPerSecond and overbook, polled until all are admitted), so that every purchase
  passes the admission check inside reserve.lua."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from flashsale.bench import scenarios
from flashsale.bench.platform import JWT_SECRET
from flashsale.bench.processes import HttpServer
from flashsale.bench.run import Run
from flashsale.bench.wrk import Load, WrkResult, write_tokens
from flashsale.invariants import Check, check_admission, redis_figures

STOCK = 100_000_000  # never sells out
# A live room in front of a big sale: the polls' room.
ROOM_RATE = 50
ROOM: dict[str, Any] = {
    "order": "fifo",
    "admitPerSecond": ROOM_RATE,
    "shoppingSeconds": 120,
    "overbook": 1,
}
# A room that lets everyone in at once and keeps them in: the queued purchases' room.
OPEN_ROOM: dict[str, Any] = {
    "order": "fifo",
    "admitPerSecond": 100_000,
    "shoppingSeconds": 86_400,
    "overbook": 1000,
}
ADMIT_TIMEOUT = 60.0


def _users(run: Run) -> list[str]:
    """The shoppers of `run.tokens` (flashsale/bench/wrk.py, write_tokens)."""
    return [f"shopper-{i}" for i in range(run.options.users)]


def _room_sale(run: Run, prefix: str, room: dict[str, Any]) -> str:
    return run.new_sale(prefix, STOCK, waitingRoom=dict(room))


def _join_all(run: Run, sale: str) -> None:
    for user in _users(run):
        run.platform.stock.join(sale, user)


def _admit_all(run: Run, sale: str) -> None:
    """Poll until the open room has let in every shopper who joined."""
    stock, deadline = run.platform.stock, time.monotonic() + ADMIT_TIMEOUT
    while time.monotonic() < deadline:
        figures = stock.room_figures(sale)
        if figures is not None and figures.waiting == 0:
            return
        stock.poll(sale, "shopper-0")  # any call advances the gate
        time.sleep(0.01)
    raise RuntimeError(f"{sale}: the room did not let every shopper in")


def _stock_untouched(run: Run, scenario: str, sale: str, extra: list[str]) -> Check:
    f = redis_figures(run.platform.stock, sale)
    problems = list(extra)
    if f["remaining"] != f["total"] or f["inflight"] or f["live"]:
        problems.append("the queue's calls changed the stock")
    return Check(scenario, not problems, "; ".join(problems) or "stock untouched", f)


def room_series(run: Run, api: HttpServer, server: str) -> dict[str, Any]:
    o, p = run.options, run.platform
    out: dict[str, Any] = {"server": server, "room": ROOM, "open_room": OPEN_ROOM}

    run.log(f"{server}: GET queue (polls of {o.users:,} shoppers who joined)")
    opened = time.monotonic()  # the sale is active, and its gate open, from its creation
    poll_sale = _room_sale(run, "room-poll", ROOM)
    _join_all(run, poll_sale)

    def poll_check(result: WrkResult, connections: int) -> None:
        figures = p.stock.room_figures(poll_sale)
        assert figures is not None
        # The gate's bucket holds a twentieth of a second's worth, at least one (queue.lua).
        allowed = ROOM_RATE * (time.monotonic() - opened) + max(1, ROOM_RATE / 20)
        extra = [] if figures.admissions <= allowed else ["admissions above admitPerSecond"]
        run.check(_stock_untouched(run, f"poll/{server}/c{connections}", poll_sale, extra))

    path = f"/v1/sales/{poll_sale}/queue"
    out["poll"] = run.measure(
        "poll",
        lambda c: Load(api.base + path, c, o.seconds, "GET", run.tokens),
        200,
        poll_check,
        api.pids,
    )
    p.drop_sale_keys(poll_sale)

    run.log(f"{server}: POST reservation, a sale without a room and one with, in turn")
    out["reservation_unqueued"], out["reservation_queued"] = {}, {}
    for connections in o.connections:
        for figure, room in (("reservation_unqueued", None), ("reservation_queued", OPEN_ROOM)):
            out[figure] |= _purchases(run, api, server, figure, room, connections)

    run.log(f"{server}: POST queue (joins of fresh shoppers, a fresh sale each run)")
    join_tokens = write_tokens(p.workdir / "join-tokens.txt", JWT_SECRET, o.join_users, "joiner")
    live = {"sale": ""}
    fresh_shares: dict[int, list[float]] = {}

    def fresh(load: Load) -> Load:
        if live["sale"]:
            p.drop_sale_keys(live["sale"])
        live["sale"] = _room_sale(run, "room-join", ROOM)
        return dataclasses.replace(load, url=f"{api.base}/v1/sales/{live['sale']}/queue")

    def join_check(result: WrkResult, connections: int) -> None:
        figures = p.stock.room_figures(live["sale"])
        assert figures is not None
        joined, answered = figures.waiting + figures.admissions, result.status.get(202, 0)
        fresh_shares.setdefault(connections, []).append(joined / max(1, answered))
        extra = []
        if joined > answered + connections:
            extra.append(f"{joined} in the queue after {answered} joins answered")
        run.check(_stock_untouched(run, f"join/{server}/c{connections}", live["sale"], extra))

    out["join"] = run.measure(
        "join",
        lambda c: Load(api.base, c, o.seconds, "POST", join_tokens),
        202,
        join_check,
        api.pids,
        fresh=fresh,
    )
    for connections, shares in fresh_shares.items():
        # The timed runs' (the warm-up's is the first).
        out["join"][str(connections)]["first_joins_share"] = round(min(shares[1:] or shares), 3)
    p.drop_sale_keys(live["sale"])
    return out


def _purchases(
    run: Run,
    api: HttpServer,
    server: str,
    figure: str,
    room: dict[str, Any] | None,
    connections: int,
) -> dict[str, Any]:
    """The reservation figure at one level, on a fresh sale (behind `room` if given)."""
    p, o = run.platform, run.options
    if room:
        sale = _room_sale(run, "room-buy", room)
        _join_all(run, sale)
        _admit_all(run, sale)
    else:
        sale = run.new_sale("room-live", STOCK)
    counted = {"accepted": 0, "in_flight": 0}

    def check(result: WrkResult, c: int) -> None:
        counted["accepted"] += result.status.get(202, 0)
        counted["in_flight"] += c
        scenario = f"{figure}/{server}/c{c}"
        run.check(
            check_admission(p.stock, scenario, sale, counted["accepted"], counted["in_flight"])
        )
        p.redis.unlink(scenarios.QUEUE)  # no workers here: drop the task messages

    path = f"/v1/sales/{sale}/reservations"
    measured = run.measure(
        figure,
        lambda c: Load(api.base + path, c, o.seconds, "POST", run.tokens, None, True),
        202,
        check,
        api.pids,
        levels=(connections,),
    )
    p.drop_sale_keys(sale)
    return measured
