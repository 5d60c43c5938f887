"""The worker's Redis transport closes a channel whether or not its broker is still
there, and puts unacknowledged messages back when it is."""

from __future__ import annotations

import base64
import tempfile
import uuid
from pathlib import Path

import orjson
import pytest
import redis
from kombu import Connection

from flashsale.embedded import RedisServer
from flashsale.worker.transport import TRANSPORT
from tests.conftest import Platform


def test_closing_a_dropped_channel_restores_its_unacked_messages(platform: Platform) -> None:
    queue = f"test-transport-{uuid.uuid4().hex[:8]}"
    with Connection(platform.redis_url, transport=TRANSPORT) as conn:
        channel = conn.channel()
        channel.queue_declare(queue)
        channel.basic_publish(channel.prepare_message("hello"), exchange="", routing_key=queue)
        assert channel.basic_get(queue, no_ack=False) is not None
        assert platform.redis.llen(queue) == 0
        # What a lost broker connection leaves: the transport no longer knows its client.
        # kombu's own channel then fails to close with AttributeError.
        channel.connection.client = None
        channel.close()
    [restored] = [orjson.loads(raw) for raw in platform.redis.lrange(queue, 0, -1)]
    assert base64.b64decode(restored["body"]) == b"hello"
    assert restored["headers"]["redelivered"] is True
    platform.redis.delete(queue)


def test_a_channel_closes_when_its_broker_is_gone() -> None:
    broker = RedisServer(Path(tempfile.mkdtemp()) / "broker", appendonly=False).start()
    try:
        with Connection(broker.url, transport=TRANSPORT) as conn:
            channel = conn.channel()
            channel.queue_declare("q")
            channel.basic_publish(channel.prepare_message("hello"), exchange="", routing_key="q")
            message = channel.basic_get("q", no_ack=False)
            assert message is not None
            broker.stop()
            channel.close()  # no error: Celery would call that unrecoverable
            channel.close()  # and Celery closes more than once
            assert channel.closed
            # A task that ends now rejects its message on the closed channel: Celery logs
            # a connection error and goes on (anything else would stop the worker).
            with pytest.raises(redis.ConnectionError):
                message.reject(requeue=False)
    finally:
        broker.stop()
