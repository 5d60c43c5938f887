"""The Celery task message for "persist this reservation", written by hand.

Celery's own publish costs about a millisecond of CPU per call and blocks the event loop,
so the reservation path renders the message itself, following Celery's task message
protocol v2 as carried by kombu's Redis transport (a JSON envelope pushed with LPUSH onto
the queue's list). The reserve script can then push it in the same atomic step that takes
the stock. The worker tests consume these messages with a real Celery worker.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid

import orjson

PERSIST_TASK = "flashsale.persist_order"
_ORIGIN = f"flashsale-api@{socket.gethostname()}:{os.getpid()}"


def persist_message(sale: str, order_id: str, queue: str) -> bytes:
    """One Redis-transport envelope asking a worker to persist `order_id` of `sale`."""
    args = [sale, order_id]
    body = orjson.dumps(
        [args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    )
    task_id = str(uuid.uuid4())
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": PERSIST_TASK,
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
            "argsrepr": repr(args),
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
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return orjson.dumps(envelope)
