"""The operator's own knobs, read from FLASHSALE_OPERATOR_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLASHSALE_OPERATOR_", extra="ignore")

    namespace: str = Field(default="", description="Namespace to serve; empty: all namespaces.")
    api_deployment: str = Field(
        default="flashsale-api",
        description="API Deployment to scale; empty leaves it alone (an HPA scales it).",
    )
    worker_deployment: str = Field(
        default="flashsale-worker",
        description="Celery worker Deployment to scale; empty leaves it alone.",
    )
    api_baseline_replicas: int = Field(default=1, ge=0, description="API replicas with no sale.")
    worker_baseline_replicas: int = Field(
        default=1, ge=0, description="Worker replicas with no sale."
    )
    lead_seconds: float = Field(
        default=300.0, ge=0, description="Scale up this long before a sale starts."
    )
    refresh_seconds: float = Field(
        default=5.0, gt=0, description="How often phase, status and scale are re-checked."
    )
    metrics_port: int = Field(
        default=9090, ge=0, le=65535, description="Prometheus /metrics port; 0 turns it off."
    )
    request_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one Kubernetes API request."
    )
    watch_timeout_seconds: float = Field(
        default=300.0, gt=0, description="Server-side timeout of one watch request."
    )
