"""AsyncStock, the API's path to reserve.lua: calls of one event-loop tick share one
round trip, and each still gets its own answer."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
import redis.asyncio

from flashsale.embedded import RedisServer, free_port
from flashsale.handoff import persist_args
from flashsale.stock import AsyncStock, Outcome, Stock
from flashsale.stock.keys import SaleKeys
from tests.conftest import Platform
from tests.helpers.limits import sale_limits

LIMITS = sale_limits(sku="SKU", per_user_limit=1)


@pytest.fixture
async def fast_stock(platform: Platform):  # type: ignore[no-untyped-def]
    client = redis.asyncio.Redis.from_url(platform.redis_url)
    yield AsyncStock(client)
    await client.aclose()


async def test_concurrent_calls_get_their_own_results(
    platform: Platform, fast_stock: AsyncStock
) -> None:
    sale = platform.sale(stock=50, perUserLimit=2)
    calls = [(f"user-{i % 120}", str(uuid.uuid4())) for i in range(300)]
    results = await asyncio.gather(
        *(fast_stock.reserve(sale, user, 1, order) for user, order in calls)
    )
    outcomes = Counter(r.outcome for r in results)
    assert outcomes == {Outcome.ACCEPTED: 50, Outcome.SOLD_OUT: 250}
    for (user, order), result in zip(calls, results, strict=True):
        if result.outcome is Outcome.ACCEPTED:
            # Its own order id, recorded for its own user.
            assert result.order_id == order
            stored = platform.redis.hget(SaleKeys(sale).reservation(order), "user")
            assert stored == user.encode()
    assert platform.remaining(sale) == 0


async def test_mixed_answers_in_one_batch(platform: Platform, fast_stock: AsyncStock) -> None:
    open_sale = platform.sale(stock=5, perUserLimit=1)
    paused = platform.sale(stock=5, paused=True)
    order = str(uuid.uuid4())
    results = await asyncio.gather(
        fast_stock.reserve(open_sale, "ann", 1, order),
        fast_stock.reserve(paused, "ann", 1, str(uuid.uuid4())),
        fast_stock.reserve("no-such-sale", "ann", 1, str(uuid.uuid4())),
        fast_stock.reserve(open_sale, "ann", 1, str(uuid.uuid4())),
    )
    assert [r.outcome for r in results] == [
        Outcome.ACCEPTED,
        Outcome.PAUSED,
        Outcome.UNKNOWN_SALE,
        Outcome.LIMIT_REACHED,
    ]
    assert results[0].order_id == order


async def test_a_call_sent_again_after_noscript_is_counted_once(platform: Platform) -> None:
    sale = platform.sale(stock=10, perUserLimit=10)
    client = redis.asyncio.Redis.from_url(platform.redis_url)
    counted: list[int] = []
    stock = AsyncStock(client, on_call=counted.append)
    try:
        platform.redis.script_flush()
        result = await stock.reserve(sale, "cy", 1, str(uuid.uuid4()))
    finally:
        await client.aclose()
    assert result.outcome is Outcome.ACCEPTED
    assert counted == [1]


async def test_script_cache_flushed_mid_sale(platform: Platform, fast_stock: AsyncStock) -> None:
    sale = platform.sale(stock=10, perUserLimit=10)
    assert (await fast_stock.reserve(sale, "bo", 1, str(uuid.uuid4()))).outcome is Outcome.ACCEPTED
    platform.redis.script_flush()  # as after a Redis restart or failover
    results = await asyncio.gather(
        *(fast_stock.reserve(sale, "bo", 1, str(uuid.uuid4())) for _ in range(4))
    )
    assert {r.outcome for r in results} == {Outcome.ACCEPTED}
    assert platform.remaining(sale) == 5


async def test_redis_down_fails_every_call_of_the_batch() -> None:
    client = redis.asyncio.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1
    )
    stock = AsyncStock(client)
    results = await asyncio.gather(
        *(stock.reserve("s", f"u{i}", 1, str(uuid.uuid4())) for i in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, redis.ConnectionError) for r in results), results
    await client.aclose()


async def test_a_redis_that_stops_answering_times_the_batch_out() -> None:
    server = RedisServer(Path(tempfile.mkdtemp()) / "r", appendonly=False).start()
    client = redis.asyncio.Redis.from_url(server.url, socket_timeout=0.5)
    stock = AsyncStock(client)
    try:
        await client.ping()  # connected, then the server freezes
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        results = await asyncio.gather(
            *(stock.reserve("s", f"u{i}", 1, str(uuid.uuid4())) for i in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, redis.TimeoutError) for r in results), results
        assert time.monotonic() - started < 3
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        await client.aclose()
        server.stop()


def test_packed_calls_are_byte_for_byte_what_redis_py_sends() -> None:
    from redis.asyncio.connection import Connection

    from flashsale.handoff import MessageTemplate
    from flashsale.stock.calls import Loan, Purchase, reserve_call
    from flashsale.stock.wire import Encoded, pack_call

    purchases = [Purchase("üser", 3, str(uuid.uuid4()), "key-1"), Purchase("b", 1, "o-2")]
    template = MessageTemplate(b"\x00head\r\n", b"tail\r\n")
    sha = b"0123456789abcdef0123456789abcdef01234567"
    loans = [Loan("l1", "s/2", 3), Loan("l2", "s/1", 1)]
    for queue, message, deadline, lent in (
        ("q", template, 1_700_000_000_123, []),
        ("", None, 0, loans),
    ):
        for segment in ("s", "s/3"):
            keys, args = reserve_call(segment, purchases, queue, message, deadline, lent)
            expected = b"".join(Connection().pack_command("EVALSHA", sha, len(keys), *keys, *args))
            encoded = [Encoded.of(segment, p) for p in purchases]
            assert pack_call(sha, segment, encoded, queue, message, deadline, lent) == expected


async def test_a_purchase_that_cannot_be_encoded_fails_alone(platform: Platform) -> None:
    """A user id holding a lone surrogate cannot be sent; it must not take down the other
    purchases that arrive in the same moment (they share one call)."""
    from flashsale.stock import InvalidPurchase

    sale = platform.sale(stock=50, perUserLimit=1)
    client = redis.asyncio.Redis.from_url(platform.redis_url)
    stock = AsyncStock(client)
    users = [f"u{i}" for i in range(20)]
    users.insert(7, "bad\ud800")
    try:
        results = await asyncio.gather(
            *(stock.reserve(sale, user, 1, str(uuid.uuid4())) for user in users),
            return_exceptions=True,
        )
    finally:
        await client.aclose()
    assert isinstance(results[7], InvalidPurchase)
    others = results[:7] + results[8:]
    assert all(not isinstance(r, BaseException) for r in others), others
    assert all(r.outcome is Outcome.ACCEPTED for r in others if not isinstance(r, BaseException))
    assert platform.remaining(sale) == 30


async def test_a_call_reaching_redis_after_its_deadline_decides_nothing(
    platform: Platform, tmp_path: Path
) -> None:
    """Redis frozen past the API's wait: the calls it then runs refuse themselves, so no
    unit is taken for a shopper who was answered 503."""
    server = RedisServer(tmp_path / "late", appendonly=False).start()
    seed = redis.Redis.from_url(server.url)
    client = redis.asyncio.Redis.from_url(server.url, socket_timeout=0.5)
    try:
        Stock(seed).load("s", LIMITS)
        stock = AsyncStock(client)
        await stock.sync_clock()
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            results = await asyncio.gather(
                *(stock.reserve("s", f"u{i}", 1, str(uuid.uuid4())) for i in range(5)),
                return_exceptions=True,
            )
            assert all(isinstance(r, redis.TimeoutError) for r in results), results
            time.sleep(1.0)  # well past the deadline of those calls
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        time.sleep(0.3)  # Redis now runs what was waiting in its socket buffers
        assert int(seed.get(SaleKeys("s").stock) or 0) == LIMITS.total
        assert seed.zcard(SaleKeys("s").outbox) == 0
        # And a call in time still goes through.
        result = await stock.reserve("s", "late-bird", 1, str(uuid.uuid4()))
        assert result.outcome is Outcome.ACCEPTED
    finally:
        await client.aclose()
        seed.close()
        server.stop()


async def test_script_handoff_queues_one_message_per_sale_and_batch(platform: Platform) -> None:
    first, second = platform.sale(stock=3, perUserLimit=1), platform.sale(stock=10)
    queue = f"q-{uuid.uuid4()}"
    client = redis.asyncio.Redis.from_url(platform.redis_url)
    stock = AsyncStock(client, queue=queue)
    calls = [(first, f"u{i}") for i in range(5)] + [(second, f"v{i}") for i in range(4)]
    try:
        results = await asyncio.gather(
            *(stock.reserve(sale, user, 1, str(uuid.uuid4())) for sale, user in calls)
        )
    finally:
        await client.aclose()
    accepted: dict[str, list[str]] = {first: [], second: []}
    for (sale, _), result in zip(calls, results, strict=True):
        if result.outcome is Outcome.ACCEPTED:
            assert result.order_id is not None
            accepted[sale].append(result.order_id)
    assert [len(accepted[first]), len(accepted[second])] == [3, 4]
    queued = sorted(persist_args(raw) for raw in platform.redis.lrange(queue, 0, -1))
    # One tick, one call per sale: one message each, with exactly the accepted ids.
    assert queued == sorted([(first, accepted[first]), (second, accepted[second])])
    platform.redis.delete(queue)


async def test_publish_handoff_hands_on_accepted_new_orders_before_answering(
    platform: Platform,
) -> None:
    sale = platform.sale(stock=2, perUserLimit=1)
    handed: list[tuple[str, list[str]]] = []
    answered: list[str] = []

    async def publish(sale: str, order_ids: list[str]) -> None:
        assert not answered, "a purchase was answered before its message went out"
        handed.append((sale, order_ids))

    client = redis.asyncio.Redis.from_url(platform.redis_url)
    stock = AsyncStock(client, publish=publish)

    async def buy(user: str, key: str | None = None) -> str:
        result = await stock.reserve(sale, user, 1, str(uuid.uuid4()), key)
        answered.append(user)
        return result.outcome.value

    try:
        outcomes = await asyncio.gather(buy("ann", "k"), buy("bob"), buy("cy"))
        assert outcomes == ["accepted", "accepted", "sold_out"]
        assert len(handed) == 1 and handed[0][0] == sale and len(handed[0][1]) == 2
        # A replay of Ann's key is answered, but hands nothing on again.
        answered.clear()
        assert await buy("ann", "k") == "accepted"
        assert len(handed) == 1
    finally:
        await client.aclose()
