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
message.

It also reads what it pops with care. kombu decodes a popped message with no guard, so
one item on the queue that is not a message (not JSON, or not an envelope) raised out of
the consumer's loop: Celery called that unrecoverable and the worker shut down, for every
shopper. Such an item becomes a message for the dead-letter task instead, which records
it; the worker goes on with the next."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from queue import Empty
from typing import Any

import orjson
import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from flashsale.deadletters import printable
from flashsale.handoff import BURY_TASK, task_message

log = logging.getLogger(__name__)

TRANSPORT = "flashsale.worker.transport:Transport"
BROKER_GONE = (redis.ConnectionError, redis.TimeoutError, OSError)


def _envelope_problem(envelope: Any) -> str | None:
    """What keeps kombu and Celery from taking `envelope` as a task message, or None."""
    if not isinstance(envelope, dict):
        return "not a message envelope"
    properties, headers, body = (envelope.get(k) for k in ("properties", "headers", "body"))
    if not isinstance(properties, dict) or not isinstance(properties.get("delivery_tag"), str):
        return "no delivery properties"
    if not isinstance(headers, dict) or not isinstance(headers.get("task"), str):
        return "no task named"
    if not isinstance(body, str):
        return "no body"
    if envelope.get("content-type") == "application/json":
        try:
            raw = base64.b64decode(body) if properties.get("body_encoding") == "base64" else body
            orjson.loads(raw)
        except (binascii.Error, ValueError):
            return "a body that is not JSON"
    return None


def deliverable(item: bytes, queue: str) -> dict[str, Any]:
    """The message `item` holds or, when it holds none, a message that asks the
    dead-letter task to record it."""
    try:
        envelope = orjson.loads(item)
        problem = _envelope_problem(envelope)
    except orjson.JSONDecodeError:
        problem = "not JSON"
    if problem is None:
        return envelope  # type: ignore[no-any-return]
    log.warning("unreadable item on queue %s (%s): put aside as a dead letter", queue, problem)
    reason = f"unreadable item on queue {queue}: {problem}"
    replacement: dict[str, Any] = orjson.loads(
        task_message(BURY_TASK, [reason, printable(item)], queue)
    )
    return replacement


class Channel(kombu_redis.Channel):
    # Set by kombu's channel; declared here for the type checker only.
    connection_errors: tuple[type[BaseException], ...]
    _queue_cycle: Any
    _flush_brpop_reauth: Callable[[], None]

    def _brpop_read(self, **options: Any) -> bool:
        """kombu 5.7's BRPOP reply handling (pinned in pyproject; the worker's consumer
        calls it for every message), with `deliverable` in place of its bare decode."""
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # reconnect on the next read
                raise
            if not reply:
                raise Empty()
            dest, item = reply
            queue = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            self.connection._deliver(deliverable(item, queue), queue)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

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
