"""The capacity the sales ask for: how many API and worker replicas, and how fast each
worker persists orders. Pure functions of the specs and the clock; `scaling_loop` applies
what they return.

A sale holds its capacity from `lead` before `startsAt` until `endsAt` (for ever when
open-ended), paused or sold out included: a pause is short, and units come back to a sold-out
sale when unpaid orders expire. With no sale in its window, the baseline applies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from flashsale.spec import SaleSpec


@dataclass(frozen=True, slots=True)
class Replicas:
    api: int
    worker: int


def live_specs(items: Iterable[Mapping[str, Any]]) -> list[SaleSpec]:
    """Specs of the listed FlashSales not being deleted; a spec that does not parse asks for
    nothing."""
    specs = []
    for item in items:
        if (item.get("metadata") or {}).get("deletionTimestamp"):
            continue
        try:
            specs.append(SaleSpec.model_validate(item.get("spec") or {}))
        except ValidationError:
            continue
    return specs


def holds_capacity(spec: SaleSpec, now: datetime, lead: timedelta) -> bool:
    """Whether the sale wants its replicas at `now` (aware datetime)."""
    if spec.starts_at is not None and now < spec.starts_at - lead:
        return False
    return spec.ends_at is None or now < spec.ends_at


def desired_replicas(
    specs: Iterable[SaleSpec], now: datetime, lead: timedelta, baseline: Replicas
) -> Replicas:
    """The largest ask of the sales in their window, never below the baseline. Sales share
    the Deployments, so the biggest sale sets the size rather than the sum of them."""
    api, worker = baseline.api, baseline.worker
    for spec in specs:
        if holds_capacity(spec, now, lead):
            api = max(api, spec.api.replicas)
            worker = max(worker, spec.worker.replicas)
    return Replicas(api=api, worker=worker)


def worker_rate(
    specs: Iterable[SaleSpec], now: datetime, lead: timedelta, workers: int
) -> float | None:
    """Orders per second each worker should persist: the paces of the sales in their window
    added up (one queue serves them all), shared by the worker replicas. None: no sale."""
    paces = [s.worker.orders_per_second for s in specs if holds_capacity(s, now, lead)]
    if not paces:
        return None
    return sum(paces) / max(1, workers)


def replicas_patch(replicas: int) -> dict[str, Any]:
    """Merge patch that sets a Deployment's replicas and nothing else."""
    return {"spec": {"replicas": replicas}}
