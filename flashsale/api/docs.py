"""The API's documentation pages, `/docs` (Swagger UI) and `/redoc`, with their scripts,
styles and icon served by the application itself (fastapi-offline ships them), so the
pages work on a machine without internet and load nothing from a third-party host.

FastAPI's own pages load Swagger UI and ReDoc from a CDN and are blank offline."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

# Where the documentation pages' files are served; outside /v1 and the health routes.
STATIC_URL = "/docs-static"
# A token pasted once under "Authorize" survives a reload of /docs.
SWAGGER_UI_PARAMETERS: dict[str, Any] = {"persistAuthorization": True}


def documented_app(**fastapi_kwargs: Any) -> FastAPI:
    """A FastAPI application whose /docs and /redoc need no internet."""
    return FastAPIOffline(
        static_url=STATIC_URL, swagger_ui_parameters=SWAGGER_UI_PARAMETERS, **fastapi_kwargs
    )
