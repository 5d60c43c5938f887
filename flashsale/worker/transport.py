"""kombu's Redis transport, with a channel that survives losing its broker.

When a worker loses its broker, Celery closes the channel and reconnects; tasks still
running then acknowledge or reject their messages on the closed channel. kombu 5.7's
Redis channel builds a new connection pool for either from connection info that is gone
by then, so both raise AttributeError instead of a connection error, Celery calls that
unrecoverable and the worker shuts down. This channel raises the connection error Celery
expects, and on close puts its unacknowledged messages back before it drops its pool.
If the broker cannot be reached for that, the messages stay where they are, in the
broker's set of unacknowledged messages (its visibility timeout brings them back), and
the close goes on. The outbox sweep keeps every reservation whatever happens to its
message."""

from __future__ import annotations

import logging
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)

TRANSPORT = "flashsale.worker.transport:Transport"
BROKER_GONE = (redis.ConnectionError, redis.TimeoutError, OSError)


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the broker connection of this channel is closed")
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[misc]
        return params

    def close(self) -> None:
        qos = self._qos
        if not self.closed and qos is not None:
            try:
                qos.restore_unacked_once()  # marks them restored, whatever happens
            except BROKER_GONE as exc:
                log.warning("broker gone; unacknowledged messages stay in its unacked set: %s", exc)
                delivered = qos._delivered
                if delivered:
                    delivered.clear()  # forget them here: they were not restored
        super().close()


class Transport(kombu_redis.Transport):
    Channel = Channel
