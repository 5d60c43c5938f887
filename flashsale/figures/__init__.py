"""Platform figures for SREs: `read` takes them from Redis, the broker and PostgreSQL
(cached a few seconds), `export` turns them into Prometheus metrics."""

from flashsale.figures.export import PlatformCollector, exported_names, families
from flashsale.figures.read import (
    CachedFigures,
    FiguresReader,
    PlatformFigures,
    SaleFigures,
)

__all__ = [
    "CachedFigures",
    "FiguresReader",
    "PlatformCollector",
    "PlatformFigures",
    "SaleFigures",
    "exported_names",
    "families",
]
