"""reserve.lua on its own, against the real Redis: one atomic admit-or-refuse per call."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from flashsale.handoff import persist_args
from flashsale.stock import Outcome, Purchase, ReserveResult
from flashsale.stock.calls import parse_answers, reserve_call
from flashsale.stock.keys import SaleKeys
from flashsale.stock.scripts import lua_source
from tests.conftest import Platform


def new_id() -> str:
    return str(uuid.uuid4())


def text_hash(platform: Platform, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in platform.redis.hgetall(key).items()}


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def assert_untouched(platform: Platform, sale: str, stock: int, order_id: str) -> None:
    """A refusal leaves the stock as it was and records no reservation."""
    k = SaleKeys(sale)
    client = platform.redis
    assert platform.remaining(sale) == stock
    assert not client.exists(k.reservation(order_id))
    assert client.zscore(k.outbox, order_id) is None


def test_accepted_decrements_stock_and_records_the_reservation(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=2, paymentTimeoutSeconds=90)
    k = SaleKeys(sale)
    client = platform.redis
    order = new_id()

    before_ms = time.time() * 1000
    result = platform.stock.reserve(sale, "alice", 2, order)
    after_ms = time.time() * 1000

    assert result.outcome is Outcome.ACCEPTED
    assert result.order_id == order
    assert result.quantity == 2
    assert result.replayed is False
    assert platform.remaining(sale) == 3

    r = text_hash(platform, k.reservation(order))
    assert r["user"] == "alice"
    assert r["qty"] == "2"
    assert r["state"] == "reserved"
    reserved_at = int(r["reserved_at"])
    # Redis runs on this machine: its clock agrees with ours within a little slack.
    assert before_ms - 1000 <= reserved_at <= after_ms + 1000
    assert int(r["expires_at"]) == reserved_at + 90 * 1000
    assert result.expires_at_ms == reserved_at + 90 * 1000

    assert client.zscore(k.outbox, order) == reserved_at
    assert client.zcard(k.outbox) == 1
    assert text_hash(platform, k.meta)["inflight"] == "2"
    assert client.hget(k.held, "alice") == b"2"


def test_several_acceptances_add_up(platform: Platform) -> None:
    sale = platform.sale(stock=10, perUserLimit=5)
    k = SaleKeys(sale)
    orders = [new_id() for _ in range(3)]
    for user, order in zip(["alice", "bob", "alice"], orders, strict=True):
        assert platform.stock.reserve(sale, user, 2, order).outcome is Outcome.ACCEPTED

    assert platform.remaining(sale) == 4
    assert text_hash(platform, k.meta)["inflight"] == "6"
    assert text_hash(platform, k.held) == {"alice": "4", "bob": "2"}
    members = platform.redis.zrange(k.outbox, 0, -1)
    assert sorted(m.decode() for m in members) == sorted(orders)


def test_unknown_sale(platform: Platform) -> None:
    sale = f"nope-{uuid.uuid4().hex[:10]}"
    order = new_id()
    result = platform.stock.reserve(sale, "alice", 1, order)
    assert result.outcome is Outcome.UNKNOWN_SALE
    assert result.order_id is None
    # Nothing is created for a sale that does not exist.
    assert platform.redis.keys(SaleKeys(sale).pattern) == []


def test_paused(platform: Platform) -> None:
    sale = platform.sale(stock=3, paused=True)
    order = new_id()
    assert platform.stock.reserve(sale, "alice", 1, order).outcome is Outcome.PAUSED
    assert_untouched(platform, sale, 3, order)


def test_not_started(platform: Platform) -> None:
    sale = platform.sale(stock=3, startsAt=iso(timedelta(hours=1)))
    order = new_id()
    assert platform.stock.reserve(sale, "alice", 1, order).outcome is Outcome.NOT_STARTED
    assert_untouched(platform, sale, 3, order)


def test_started_in_the_past_is_open(platform: Platform) -> None:
    sale = platform.sale(stock=3, startsAt=iso(-timedelta(hours=1)), endsAt=iso(timedelta(hours=1)))
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.ACCEPTED
    assert platform.remaining(sale) == 2


def test_ended(platform: Platform) -> None:
    sale = platform.sale(
        stock=3, startsAt=iso(-timedelta(hours=2)), endsAt=iso(-timedelta(hours=1))
    )
    order = new_id()
    assert platform.stock.reserve(sale, "alice", 1, order).outcome is Outcome.ENDED
    assert_untouched(platform, sale, 3, order)


def test_closed_flag_ends_the_sale(platform: Platform) -> None:
    sale = platform.sale(stock=3)
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.ACCEPTED
    platform.redis.hset(SaleKeys(sale).meta, "closed", 1)
    order = new_id()
    assert platform.stock.reserve(sale, "bob", 1, order).outcome is Outcome.ENDED
    assert_untouched(platform, sale, 2, order)


def test_sold_out_when_stock_below_quantity(platform: Platform) -> None:
    sale = platform.sale(stock=2, perUserLimit=5)
    k = SaleKeys(sale)
    order = new_id()
    assert platform.stock.reserve(sale, "alice", 3, order).outcome is Outcome.SOLD_OUT
    assert_untouched(platform, sale, 2, order)
    assert platform.redis.hget(k.held, "alice") is None

    assert platform.stock.reserve(sale, "alice", 2, new_id()).outcome is Outcome.ACCEPTED
    assert platform.remaining(sale) == 0
    last = new_id()
    assert platform.stock.reserve(sale, "bob", 1, last).outcome is Outcome.SOLD_OUT
    assert_untouched(platform, sale, 0, last)
    assert text_hash(platform, k.meta)["inflight"] == "2"


def test_limit_reached_across_reservations(platform: Platform) -> None:
    sale = platform.sale(stock=10, perUserLimit=2)
    k = SaleKeys(sale)
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.ACCEPTED
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.ACCEPTED
    order = new_id()
    assert platform.stock.reserve(sale, "alice", 1, order).outcome is Outcome.LIMIT_REACHED
    assert_untouched(platform, sale, 8, order)
    assert platform.redis.hget(k.held, "alice") == b"2"
    # The limit is per user: someone else still buys.
    assert platform.stock.reserve(sale, "bob", 2, new_id()).outcome is Outcome.ACCEPTED
    assert platform.remaining(sale) == 6


def test_limit_reached_when_quantity_above_limit(platform: Platform) -> None:
    sale = platform.sale(stock=10, perUserLimit=2)
    order = new_id()
    assert platform.stock.reserve(sale, "alice", 3, order).outcome is Outcome.LIMIT_REACHED
    assert_untouched(platform, sale, 10, order)
    # Partly used limit plus a quantity that would cross it.
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.ACCEPTED
    second = new_id()
    assert platform.stock.reserve(sale, "alice", 2, second).outcome is Outcome.LIMIT_REACHED
    assert_untouched(platform, sale, 9, second)


def test_idempotency_key_replays_the_first_order(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=3)
    k = SaleKeys(sale)
    first_id, second_id = new_id(), new_id()

    first = platform.stock.reserve(sale, "alice", 1, first_id, idempotency_key="key-1")
    second = platform.stock.reserve(sale, "alice", 1, second_id, idempotency_key="key-1")

    assert first.outcome is Outcome.ACCEPTED and first.replayed is False
    assert second.outcome is Outcome.ACCEPTED
    assert second.replayed is True
    assert second.order_id == first_id
    assert second.expires_at_ms == first.expires_at_ms
    assert second.quantity == 1
    # Stock, holdings and the outbox were touched once.
    assert platform.remaining(sale) == 4
    assert platform.redis.hget(k.held, "alice") == b"1"
    assert platform.redis.zcard(k.outbox) == 1
    assert not platform.redis.exists(k.reservation(second_id))

    # Without a key, or with another key, the same user makes a new order.
    third = platform.stock.reserve(sale, "alice", 1, new_id(), idempotency_key="key-2")
    assert third.outcome is Outcome.ACCEPTED and third.replayed is False
    assert third.order_id != first_id
    assert platform.remaining(sale) == 3


@pytest.mark.parametrize(
    ("first_user", "first_key", "second_user", "second_key"),
    [
        ("alice", "shared", "bob", "shared"),  # another user, same key
        ("a:b", "c", "a", "b:c"),  # crafted so that naive key joining would collide
    ],
)
def test_idempotency_keys_are_per_user(
    platform: Platform, first_user: str, first_key: str, second_user: str, second_key: str
) -> None:
    sale = platform.sale(stock=5)
    first = platform.stock.reserve(sale, first_user, 1, new_id(), idempotency_key=first_key)
    second_id = new_id()
    second = platform.stock.reserve(sale, second_user, 1, second_id, idempotency_key=second_key)
    assert first.outcome is Outcome.ACCEPTED
    assert second.outcome is Outcome.ACCEPTED
    assert second.replayed is False
    assert second.order_id == second_id != first.order_id
    assert platform.remaining(sale) == 3


def test_token_bucket_limits_then_refills(platform: Platform) -> None:
    sale = platform.sale(stock=10, perUserLimit=10, rateLimit={"requestsPerSecond": 1, "burst": 2})
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.ACCEPTED
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.ACCEPTED
    order = new_id()
    limited = platform.stock.reserve(sale, "alice", 1, order)
    assert limited.outcome is Outcome.RATE_LIMITED
    assert 0 < limited.retry_after_ms <= 1000
    assert_untouched(platform, sale, 8, order)

    # The bucket is per user.
    assert platform.stock.reserve(sale, "bob", 1, new_id()).outcome is Outcome.ACCEPTED
    assert platform.remaining(sale) == 7

    time.sleep(limited.retry_after_ms / 1000 + 0.05)
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.ACCEPTED
    assert platform.remaining(sale) == 6


def queued(platform: Platform, queue: str) -> list[tuple[str, list[str]]]:
    """(sale, order ids) of each message on the queue, oldest first."""
    return [persist_args(raw) for raw in reversed(platform.redis.lrange(queue, 0, -1))]


def test_message_is_queued_only_on_acceptance(platform: Platform) -> None:
    sale = platform.sale(stock=1, perUserLimit=1)
    queue = f"q-{uuid.uuid4()}"

    def reserve(user: str, key: str | None = None) -> ReserveResult:
        return platform.stock.reserve(sale, user, 1, new_id(), idempotency_key=key, queue=queue)

    accepted = reserve("alice", key="k")
    assert accepted.outcome is Outcome.ACCEPTED
    assert queued(platform, queue) == [(sale, [accepted.order_id])]

    # A replay is not a new reservation: nothing new on the queue.
    assert reserve("alice", key="k").outcome is Outcome.ACCEPTED
    assert reserve("alice").outcome is Outcome.LIMIT_REACHED
    assert reserve("bob").outcome is Outcome.SOLD_OUT
    assert queued(platform, queue) == [(sale, [accepted.order_id])]


def test_message_is_not_queued_on_any_refusal(platform: Platform) -> None:
    queue = f"q-{uuid.uuid4()}"
    client = platform.redis
    refused = {
        Outcome.PAUSED: platform.sale(paused=True),
        Outcome.NOT_STARTED: platform.sale(startsAt=iso(timedelta(hours=1))),
        Outcome.ENDED: platform.sale(
            startsAt=iso(-timedelta(hours=2)), endsAt=iso(-timedelta(hours=1))
        ),
        Outcome.SOLD_OUT: platform.sale(stock=0),
        Outcome.UNKNOWN_SALE: f"nope-{uuid.uuid4().hex[:10]}",
    }
    for expected, sale in refused.items():
        result = platform.stock.reserve(sale, "alice", 1, new_id(), queue=queue)
        assert result.outcome is expected
    assert not client.exists(queue)

    limited = platform.sale(stock=5, perUserLimit=5, rateLimit={"requestsPerSecond": 1, "burst": 1})
    first = platform.stock.reserve(limited, "alice", 1, new_id(), queue=queue)
    second = platform.stock.reserve(limited, "alice", 1, new_id(), queue=queue)
    assert first.outcome is Outcome.ACCEPTED
    assert second.outcome is Outcome.RATE_LIMITED
    assert queued(platform, queue) == [(limited, [first.order_id])]


def test_idempotent_replay_survives_rate_limit_and_pause(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=5, rateLimit={"requestsPerSecond": 1, "burst": 1})
    first = platform.stock.reserve(sale, "alice", 1, new_id(), idempotency_key="k")
    # The bucket is empty now; a new purchase is throttled, the retry is not.
    assert platform.stock.reserve(sale, "alice", 1, new_id()).outcome is Outcome.RATE_LIMITED
    retry = platform.stock.reserve(sale, "alice", 1, new_id(), idempotency_key="k")
    assert (retry.outcome, retry.order_id, retry.replayed) == (
        Outcome.ACCEPTED,
        first.order_id,
        True,
    )
    platform.redis.hset(SaleKeys(sale).meta, "paused", "1")
    retry = platform.stock.reserve(sale, "alice", 1, new_id(), idempotency_key="k")
    assert (retry.outcome, retry.order_id) == (Outcome.ACCEPTED, first.order_id)
    assert platform.remaining(sale) == 4


def test_a_reused_idempotency_key_with_another_quantity_is_refused(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=3)
    first = platform.stock.reserve(sale, "alice", 1, new_id(), idempotency_key="key-q")
    other = new_id()
    reused = platform.stock.reserve(sale, "alice", 2, other, idempotency_key="key-q")
    assert reused.outcome is Outcome.KEY_REUSED
    assert reused.order_id == first.order_id  # named, so the shopper can find it
    assert_untouched(platform, sale, 4, other)
    # The same request again is still the first order.
    again = platform.stock.reserve(sale, "alice", 1, new_id(), idempotency_key="key-q")
    assert again.outcome is Outcome.ACCEPTED and again.order_id == first.order_id


def test_a_call_past_its_deadline_decides_nothing(platform: Platform) -> None:
    sale = platform.sale(stock=5, perUserLimit=3)
    client = platform.redis
    sha = client.script_load(lua_source("reserve"))
    secs, micros = client.time()
    now_ms = int(secs) * 1000 + int(micros) // 1000
    orders = [new_id(), new_id()]
    purchases = [Purchase("alice", 1, orders[0]), Purchase("bob", 1, orders[1], "k")]

    keys, args = reserve_call(sale, purchases, deadline_ms=now_ms - 1)
    raw = client.evalsha(sha, len(keys), *keys, *args)
    assert [r.outcome for r in parse_answers(raw, 2)[0]] == [Outcome.LATE, Outcome.LATE]
    assert int(raw[-4]) >= now_ms  # Redis's clock follows the answers
    for order in orders:
        assert_untouched(platform, sale, 5, order)
    assert not client.exists(SaleKeys(sale).idempotency("bob", "k"))

    keys, args = reserve_call(sale, purchases, deadline_ms=now_ms + 60_000)
    raw = client.evalsha(sha, len(keys), *keys, *args)
    assert [r.outcome for r in parse_answers(raw, 2)[0]] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert platform.remaining(sale) == 3
