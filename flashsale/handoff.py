"""What crosses from the API, the sweep and the operator to the workers: the Celery task
message for "persist these reservations", written by hand, and the key of the workers'
pace. Everything above the workers writes these; `flashsale.worker` only reads them.

The task message:

Celery's own publish costs about a millisecond of CPU per call and blocks the event loop,
so the reservation path renders the message itself, following Celery's task message
protocol v2 as carried by kombu's Redis transport (a JSON envelope pushed with LPUSH onto
the queue's list). One message carries every reservation of one sale that one reserve
call accepted, so a worker persists them in one transaction.

The message is split around its list of order ids: the reserve script fills in the ids
it accepted and pushes the message in the same atomic step that takes the stock. For
that, the body is a plain JSON string (no base64 body encoding, which kombu reads as
well), so an id goes in as `\\"<id>\\"`. The worker tests consume these messages with a
real Celery worker.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

WORKER_PACE_KEY = "flashsale:worker-pace"  # orders/s per worker, set by the operator
PACE_TTL_SECONDS = 300  # a pace the operator stopped refreshing falls back to the default

PERSIST_TASK = "flashsale.persist_orders"
# What a worker makes of a message it cannot read: a dead letter, written by this task.
BURY_TASK = "flashsale.bury_message"
# The one-order task of earlier releases, still consumed so that an upgrade in the middle
# of a sale loses no queued message.
PERSIST_ONE_TASK = "flashsale.persist_order"
# Most order ids in one message: one worker transaction each, and one pace step.
ORDERS_PER_MESSAGE = 256
_ORIGIN = f"flashsale-api@{socket.gethostname()}:{os.getpid()}"
_IDS = "@order-ids@"
_IDS_IN_ENVELOPE = b'\\"' + _IDS.encode() + b'\\"'


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """A persist message without its order ids: `head`, the ids, `tail`."""

    head: bytes
    tail: bytes

    def render(self, order_ids: Iterable[str]) -> bytes:
        return self.head + b",".join(b'\\"%s\\"' % i.encode() for i in order_ids) + self.tail


def persist_template(sale: str, queue: str) -> MessageTemplate:
    """The envelope of one new task message (its own task id) for reservations of `sale`."""
    head, tail = task_message(PERSIST_TASK, [sale, _IDS], queue).split(_IDS_IN_ENVELOPE)
    return MessageTemplate(head + b"[", b"]" + tail)


def task_message(task: str, args: list[object], queue: str) -> bytes:
    """One Redis-transport envelope asking a worker to run `task` with `args`."""
    body = orjson.dumps(
        [args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    ).decode()
    task_id = str(uuid.uuid4())
    envelope = {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": f"({args[0]!r}, ...)" if args else "()",
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": True,
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "utf-8",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return orjson.dumps(envelope)


def persist_message(sale: str, order_ids: Iterable[str], queue: str) -> bytes:
    """One Redis-transport envelope asking a worker to persist `order_ids` of `sale`."""
    return persist_template(sale, queue).render(order_ids)


def persist_args(raw: bytes) -> tuple[str, list[str]]:
    """The sale and the order ids that a persist message (of either task) carries."""
    envelope = orjson.loads(raw)
    body = envelope["body"]
    if envelope["properties"].get("body_encoding") == "base64":
        body = base64.b64decode(body)
    sale, ids = orjson.loads(body)[0]
    return sale, [ids] if envelope["headers"]["task"] == PERSIST_ONE_TASK else list(ids)
