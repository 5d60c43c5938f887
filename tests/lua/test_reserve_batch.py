"""reserve.lua deciding several purchases of one sale in one call, as the API sends
them: each is decided as if alone, in order, and the admitted ones share one message."""

from __future__ import annotations

import uuid

from flashsale.handoff import persist_args
from flashsale.stock import Outcome, Purchase
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform


def buy(user: str, quantity: int = 1, key: str | None = None) -> Purchase:
    return Purchase(user, quantity, str(uuid.uuid4()), key)


def queued(platform: Platform, queue: str) -> list[tuple[str, list[str]]]:
    return [persist_args(raw) for raw in platform.redis.lrange(queue, 0, -1)]


def test_each_purchase_is_decided_in_order(platform: Platform) -> None:
    sale = platform.sale(stock=3, perUserLimit=1)
    queue = f"q-{uuid.uuid4()}"
    purchases = [buy("ann"), buy("bob"), buy("ann"), buy("cy"), buy("dee"), buy("eve")]
    results = platform.stock.reserve_many(sale, purchases, queue)
    assert [r.outcome for r in results] == [
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.LIMIT_REACHED,  # Ann's first purchase counts for her second
        Outcome.ACCEPTED,
        Outcome.SOLD_OUT,
        Outcome.SOLD_OUT,
    ]
    admitted = [p.order_id for p in purchases[:2]] + [purchases[3].order_id]
    assert [r.order_id for r in results if r.outcome is Outcome.ACCEPTED] == admitted
    assert queued(platform, queue) == [(sale, admitted)]

    k, client = SaleKeys(sale), platform.redis
    assert platform.remaining(sale) == 0
    assert int(client.hget(k.meta, "inflight")) == 3
    assert {u.decode(): int(n) for u, n in client.hgetall(k.held).items()} == {
        "ann": 1,
        "bob": 1,
        "cy": 1,
    }
    assert client.zrange(k.outbox, 0, -1) == sorted(i.encode() for i in admitted)
    for p in purchases:
        stored = client.hget(k.reservation(p.order_id), "user")
        assert stored == (p.user.encode() if p.order_id in admitted else None)
    client.delete(queue)


def test_stock_is_shared_out_by_quantity(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=5)
    results = platform.stock.reserve_many(sale, [buy("a", 3), buy("b", 3), buy("c", 2)])
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.SOLD_OUT, Outcome.ACCEPTED]
    assert [r.quantity for r in results] == [3, 0, 2]
    assert platform.remaining(sale) == 0


def test_a_key_repeated_in_one_call_takes_stock_once(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=5)
    queue = f"q-{uuid.uuid4()}"
    first, again = buy("ann", key="k"), buy("ann", key="k")
    results = platform.stock.reserve_many(sale, [first, again, buy("ann", key="other")], queue)
    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 3
    assert (results[1].order_id, results[1].replayed) == (first.order_id, True)
    assert results[2].order_id != first.order_id
    assert platform.remaining(sale) == 3
    assert queued(platform, queue) == [(sale, [first.order_id, results[2].order_id])]
    platform.redis.delete(queue)


def test_a_closed_sale_refuses_all_but_replays(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=5)
    earlier = platform.stock.reserve(sale, "ann", 1, str(uuid.uuid4()), idempotency_key="k")
    platform.redis.hset(SaleKeys(sale).meta, "paused", "1")
    queue = f"q-{uuid.uuid4()}"
    results = platform.stock.reserve_many(sale, [buy("bob"), buy("ann", key="k")], queue)
    assert [r.outcome for r in results] == [Outcome.PAUSED, Outcome.ACCEPTED]
    assert results[1].order_id == earlier.order_id
    assert not platform.redis.exists(queue)  # nothing new was admitted
    assert platform.remaining(sale) == 4


def test_unknown_sale_answers_every_purchase(platform: Platform) -> None:
    results = platform.stock.reserve_many(f"nope-{uuid.uuid4().hex[:8]}", [buy("a"), buy("b")])
    assert [r.outcome for r in results] == [Outcome.UNKNOWN_SALE] * 2


def test_rate_limit_counts_every_purchase_of_the_call(platform: Platform) -> None:
    sale = platform.sale(stock=9, perUserLimit=9, rateLimit={"requestsPerSecond": 1, "burst": 2})
    results = platform.stock.reserve_many(sale, [buy("ann"), buy("ann"), buy("ann"), buy("bob")])
    assert [r.outcome for r in results] == [
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.RATE_LIMITED,
        Outcome.ACCEPTED,
    ]
    assert results[2].retry_after_ms > 0
    assert platform.remaining(sale) == 6
