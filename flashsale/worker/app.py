"""The Celery application: Redis broker, late acks (the pace is kept by the tasks)."""

from __future__ import annotations

from celery import Celery

from flashsale.settings import Settings, get_settings
from flashsale.worker.transport import TRANSPORT


def make_celery(settings: Settings) -> Celery:
    app = Celery(
        "flashsale", broker=settings.effective_broker_url, include=["flashsale.worker.tasks"]
    )
    app.conf.update(
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A message is removed only after the order is in SQL; a worker killed halfway
        # leaves it for another worker (persisting is idempotent).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        broker_connection_retry_on_startup=True,
        broker_transport=TRANSPORT,  # kombu's Redis transport, closing channels safely
        broker_transport_options={"visibility_timeout": 300},
        worker_hijack_root_logger=False,
    )
    return app


app = make_celery(get_settings())
