"""What every handler of the operator works with, built once at start."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import redis
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from flashsale import clients
from flashsale.figures import CachedFigures, FiguresReader
from flashsale.operator.kube import KubeClient
from flashsale.operator.metrics import SaleMetrics
from flashsale.operator.settings import OperatorSettings
from flashsale.settings import Settings
from flashsale.stock import Stock

# Failures of Redis or PostgreSQL that may pass: retried, never taken as a bad spec.
BACKEND_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    OperationalError,
    DBAPIError,
)


@dataclass
class OperatorContext:
    settings: OperatorSettings
    common: Settings
    sessions: sessionmaker[Session]
    stock: Stock
    broker: redis.Redis
    kube: KubeClient
    metrics: SaleMetrics
    # Set by handlers when a sale appears, changes or goes: the scaler runs at once.
    rescale: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def watch_namespace(self) -> str | None:
        return self.settings.namespace or None

    @property
    def deployment_namespace(self) -> str:
        """The Deployments live in the release namespace: the one served, or the operator's
        own (its service account's, or the kubeconfig context's) when serving them all."""
        return self.settings.namespace or self.kube.default_namespace

    @classmethod
    def build(cls, settings: OperatorSettings, common: Settings) -> OperatorContext:
        sessions = clients.database(common)
        figures = FiguresReader.from_settings(common, sessions)
        return cls(
            settings=settings,
            common=common,
            sessions=sessions,
            stock=clients.stock(common),
            broker=clients.broker_redis(common),
            kube=KubeClient(timeout=settings.request_timeout_seconds),
            metrics=SaleMetrics(CachedFigures(figures.read)),
        )
