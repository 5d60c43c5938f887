"""The scaling loop: every refresh (and at once when a sale changes), read all FlashSales,
size the API and worker Deployments for them (the figures come from `capacity`), and set
the workers' pace (written by `pace_setter`).

It reads the sales from the API server rather than from memory, so a freshly started
operator never scales an active sale's Deployments down before it has seen that sale."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import redis

from flashsale.operator.capacity import (
    Replicas,
    desired_replicas,
    live_specs,
    replicas_patch,
    worker_rate,
)
from flashsale.operator.context import BACKEND_ERRORS, OperatorContext
from flashsale.operator.kube import KubeError
from flashsale.operator.pace_setter import PaceSetter

log = logging.getLogger(__name__)


class Scaler:
    def __init__(self, op: OperatorContext, pace: PaceSetter | None) -> None:
        self.op = op
        self.pace = pace
        self._missing: set[str] = set()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
            except (KubeError, OSError, TimeoutError) as exc:
                log.warning("scaling skipped this round: %s", exc)
            try:
                await asyncio.wait_for(self.op.rescale.wait(), self.op.settings.refresh_seconds)
            except TimeoutError:
                pass
            self.op.rescale.clear()

    async def reconcile(self) -> Replicas | None:
        op = self.op
        settings = op.settings
        if not op.kube.logged_in:
            return None  # kopf has not logged in yet; the next round will do
        specs = live_specs(await op.kube.list_sales(op.watch_namespace))
        now = datetime.now(UTC)
        lead = timedelta(seconds=settings.lead_seconds)
        want = desired_replicas(
            specs,
            now,
            lead,
            Replicas(settings.api_baseline_replicas, settings.worker_baseline_replicas),
        )
        namespace = op.deployment_namespace
        for name, replicas in (
            (settings.api_deployment, want.api),
            (settings.worker_deployment, want.worker),
        ):
            if name:  # empty: another owner scales it (the chart's API HPA)
                await self._scale(namespace, name, replicas)
        await self._pace(worker_rate(specs, now, lead, want.worker))
        return want

    async def _scale(self, namespace: str, name: str, replicas: int) -> None:
        current = await self.op.kube.deployment_replicas(namespace, name)
        if current is None:
            if name not in self._missing:
                log.warning("deployment %s/%s not found; not scaling it", namespace, name)
                self._missing.add(name)
            return
        self._missing.discard(name)
        if current != replicas:
            await self.op.kube.patch_deployment(namespace, name, replicas_patch(replicas))
            log.info("deployment %s/%s scaled from %d to %d", namespace, name, current, replicas)

    async def _pace(self, per_worker: float | None) -> None:
        try:
            await asyncio.to_thread(self.op.broker.ping)
        except BACKEND_ERRORS as exc:
            log.warning("broker unreachable: %s", exc)
            return
        if self.pace is None:
            return
        try:
            await asyncio.to_thread(self.pace.apply, per_worker)
        except redis.RedisError as exc:
            # Workers keep the pace they last read until the key expires, then their own.
            log.warning("could not write the worker pace: %s", exc)
