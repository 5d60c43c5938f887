"""Starting the operator: kopf settings, login, the scaling loop, then kopf's own loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from flashsale.operator import handlers
from flashsale.operator.context import OperatorContext
from flashsale.operator.pace_setter import PaceSetter
from flashsale.operator.scaling_loop import Scaler
from flashsale.operator.settings import OperatorSettings
from flashsale.settings import Settings, get_settings

log = logging.getLogger(__name__)

ANNOTATIONS_PREFIX = "flashsale.dev"
FINALIZER = "flashsale.dev/cleanup"


def configure(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """kopf settings, applied in the startup handler."""
    # A watch that hangs silently is cut and re-opened; requests never wait for ever.
    kopf_settings.watching.server_timeout = int(settings.watch_timeout_seconds)  # integer in URLs
    kopf_settings.watching.client_timeout = settings.watch_timeout_seconds + 10
    kopf_settings.watching.connect_timeout = 10
    kopf_settings.networking.request_timeout = settings.request_timeout_seconds
    kopf_settings.networking.connect_timeout = 10
    # kopf's bookkeeping lives in annotations, so status is ours alone (and the CRD's
    # status schema needs no x-kubernetes-preserve-unknown-fields).
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATIONS_PREFIX
    )
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATIONS_PREFIX, key="last-handled-configuration"
    )
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.posting.reporting_component = "flashsale-operator"
    kopf_settings.posting.event_name_prefix = "flashsale-"
    # The Role grants FlashSales, Events and Deployments only: no CRD or namespace scanning.
    kopf_settings.scanning.disabled = True
    # Short idle times keep reactions prompt and the shutdown quick.
    kopf_settings.queueing.idle_timeout = 1.0
    kopf_settings.queueing.exit_timeout = 2.0
    kopf_settings.background.cancellation_polling = 1.0


class QuietTimers(logging.Filter):
    """kopf logs every successful handler run at INFO; for the status timer that is a line
    per sale per refresh. Its failures and everything else still get through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timer 'refresh' succeeded")


def build_registry(op: OperatorContext) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, op)
    tasks: list[asyncio.Task[None]] = []

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # kopf and the operator's own client log in once, with the same credentials.
        return await op.kube.login(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
        configure(settings, op.settings)
        op.metrics.serve(op.settings.metrics_port)
        scaler = Scaler(op, PaceSetter(op.broker))
        tasks.append(asyncio.create_task(scaler.run_forever(), name="flashsale-scaler"))
        logger.info(
            f"serving FlashSales in {op.watch_namespace or 'all namespaces'}; scaling "
            f"{op.settings.api_deployment} and {op.settings.worker_deployment} "
            f"in {op.deployment_namespace}"
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await op.kube.close()

    return registry


def run(
    namespace: str | None = None, liveness: str | None = None, common: Settings | None = None
) -> None:
    """`flashsale operator`: serve FlashSales until SIGTERM or Ctrl-C.

    `common` defaults to what every command reads: the environment, then a `flashsale up`
    running in the data folder."""
    settings = OperatorSettings()
    if namespace is not None:
        settings = settings.model_copy(update={"namespace": namespace})
    op = OperatorContext.build(settings, common or get_settings())
    logging.getLogger("kopf.objects").addFilter(QuietTimers())
    kopf.run(
        registry=build_registry(op),
        standalone=True,  # one replica with Recreate: no peering objects needed
        clusterwide=not settings.namespace,
        namespaces=[settings.namespace] if settings.namespace else [],
        liveness_endpoint=liveness,
    )
