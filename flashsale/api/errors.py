"""Errors as the contract writes them: {"error": "<code>", "detail": "..."}."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    error: str
    detail: str


class ApiError(Exception):
    """An answer other than success; `extra` adds fields to the error body (the order id
    of a 503 whose purchase may have happened, say)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extra = extra

    def body(self) -> bytes:
        return error_body(self.code, self.detail, self.extra)


def error_body(code: str, detail: str, extra: dict[str, str] | None = None) -> bytes:
    doc = {"error": code, "detail": detail}
    if extra:
        doc |= extra
    return orjson.dumps(doc)


def error_response(
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> Response:
    return Response(
        error_body(code, detail, extra),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_doc(*codes: str) -> dict[str, Any]:
    """OpenAPI description of an error answer, for a route's `responses`."""
    return {"model": ErrorBody, "description": "Error codes: " + ", ".join(codes)}


_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.detail, exc.headers, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return error_response(422, "invalid_request", _validation_detail(exc))

    @app.exception_handler(RedisError)
    @app.exception_handler(DBAPIError)
    async def _unavailable(_: Request, exc: Exception) -> Response:
        log.warning("dependency unavailable: %s", exc)
        return error_response(
            503, "unavailable", "a backing service is unavailable, retry", {"Retry-After": "1"}
        )

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> Response:
        # A bug, not a state the contract knows: still answered in JSON (the server logs
        # the traceback), never as the framework's plain-text page.
        log.error("internal error: %r", exc)
        return error_response(500, "internal", "internal error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not even parse the body: a bad body
            return error_response(422, "invalid_request", "the body is not valid JSON")
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))
