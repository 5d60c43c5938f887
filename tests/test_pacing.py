"""The worker's pace inside the task: a token bucket that sleeps off its debt, and the
per-worker pace read from the broker's Redis. Time is a fake clock: nothing sleeps."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from flashsale.worker import pacing
from flashsale.worker.pacing import (
    BURST_SECONDS,
    REFRESH_SECONDS,
    BucketState,
    TokenBucket,
    WorkerPace,
)
from tests.conftest import Platform


class FakeTime:
    """A clock that only moves when someone sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def bucket(fake: FakeTime, rate: float) -> TokenBucket:
    return TokenBucket(lambda: rate, clock=fake.clock, sleep=fake.sleep)


def test_a_burst_passes_at_once_and_the_debt_is_slept_off(fake: FakeTime) -> None:
    assert BURST_SECONDS == 1.0  # the figures below assume a burst of one second
    pace = bucket(fake, 10.0)
    assert pace.take(10) == 0.0  # the burst: 10 units at 10/s
    assert fake.slept == []
    assert pace.take(5) == pytest.approx(0.5)  # 5 more units owe half a second
    assert fake.slept == [pytest.approx(0.5)]
    assert pace.take(5) == pytest.approx(0.5)  # the slept time paid for the last 5 only


def test_a_large_batch_waits_as_long_as_its_units_take(fake: FakeTime) -> None:
    pace = bucket(fake, 20.0)
    assert pace.take(60) == pytest.approx(2.0)  # 20 from the burst, 40 at 20/s


def test_the_long_run_rate_is_the_pace(fake: FakeTime) -> None:
    pace = bucket(fake, 10.0)
    start = fake.now
    for _ in range(110):
        pace.take(1)
    # 10 units from the burst, the other 100 at 10/s.
    assert fake.now - start == pytest.approx(10.0)


def test_refill_is_capped_at_the_burst(fake: FakeTime) -> None:
    pace = bucket(fake, 10.0)
    pace.take(10)
    fake.now += 3600  # an hour idle saves one second of pace, not an hour's
    assert pace.take(15) == pytest.approx(0.5)


def test_a_lower_rate_shrinks_the_saved_burst(fake: FakeTime) -> None:
    rate = [100.0]
    pace = TokenBucket(lambda: rate[0], clock=fake.clock, sleep=fake.sleep)
    pace.take(1)
    fake.now += 10
    rate[0] = 10.0
    assert pace.take(15) == pytest.approx(0.5)  # burst of 10, not the 100 saved before


@pytest.fixture
def pace_key(monkeypatch: pytest.MonkeyPatch, platform: Platform) -> Iterator[str]:
    """A key of this test's own in place of WORKER_PACE_KEY: the session's worker reads
    the real one from the same Redis."""
    key = f"test:worker-pace:{uuid.uuid4().hex}"
    monkeypatch.setattr(pacing, "WORKER_PACE_KEY", key)
    yield key
    platform.redis.delete(key)


def test_no_key_means_the_default(platform: Platform, pace_key: str, fake: FakeTime) -> None:
    pace = WorkerPace(platform.redis, 50.0, clock=fake.clock)
    assert pace.per_second() == 50.0


def test_the_key_sets_the_pace(platform: Platform, pace_key: str, fake: FakeTime) -> None:
    platform.redis.set(pace_key, "200")
    assert WorkerPace(platform.redis, 50.0, clock=fake.clock).per_second() == 200.0
    platform.redis.set(pace_key, "12.5")
    assert WorkerPace(platform.redis, 50.0, clock=fake.clock).per_second() == 12.5


@pytest.mark.parametrize("raw", ["abc", "-5", "0", "", "nan"])
def test_an_invalid_pace_falls_back_to_the_default(
    platform: Platform, pace_key: str, fake: FakeTime, raw: str
) -> None:
    platform.redis.set(pace_key, raw)
    pace = WorkerPace(platform.redis, 50.0, clock=fake.clock)
    assert pace.per_second() == 50.0


def test_the_key_is_read_again_only_after_the_refresh_interval(
    platform: Platform, pace_key: str, fake: FakeTime
) -> None:
    client = platform.redis
    client.set(pace_key, "200")
    pace = WorkerPace(client, 50.0, clock=fake.clock)
    assert pace.per_second() == 200.0

    client.set(pace_key, "300")
    fake.now += REFRESH_SECONDS - 0.01
    assert pace.per_second() == 200.0  # not read yet
    fake.now += 0.01
    assert pace.per_second() == 300.0

    client.delete(pace_key)
    assert pace.per_second() == 300.0
    fake.now += REFRESH_SECONDS
    assert pace.per_second() == 50.0  # the operator took it away: the default again


def test_an_unreachable_redis_keeps_the_last_pace(
    monkeypatch: pytest.MonkeyPatch, platform: Platform, pace_key: str, fake: FakeTime
) -> None:
    client = redis.Redis.from_url(platform.redis_url)
    client.set(pace_key, "200")
    pace = WorkerPace(client, 50.0, clock=fake.clock)
    assert pace.per_second() == 200.0

    def down(*_: object) -> None:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(client, "get", down)
    fake.now += REFRESH_SECONDS
    assert pace.per_second() == 200.0  # the work goes on at the pace it had
    client.close()


def test_a_bucket_follows_the_pace_read_from_redis(
    platform: Platform, pace_key: str, fake: FakeTime
) -> None:
    client = platform.redis
    client.set(pace_key, "20")
    pace = WorkerPace(client, 1000.0, clock=fake.clock)
    steps = TokenBucket(pace.per_second, clock=fake.clock, sleep=fake.sleep)
    assert steps.take(30) == pytest.approx(0.5)  # 20 from the burst, 10 at 20/s


def _take_in_child(state: BucketState, units: int) -> None:
    TokenBucket(lambda: 10.0, state=state).take(units)


def test_forked_processes_share_one_bucket() -> None:
    """As a prefork pool's processes do: 10/s with a 1 s burst, two processes take 10
    units each. Sharing the bucket, the second waits about 1 s; each with its own bucket,
    both would pass at once."""
    state = BucketState(shared=True)
    fork = multiprocessing.get_context("fork")
    started = time.monotonic()
    children = [fork.Process(target=_take_in_child, args=(state, 10)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(10)
        assert child.exitcode == 0
    assert time.monotonic() - started >= 0.9
    assert state.values[0] == pytest.approx(-10, abs=1)  # one second of debt, shared
