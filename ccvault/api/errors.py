"""Every error leaves the API as `{"error": {"code", "message", "field"}}` with a 4xx status.

Library errors (`ccvault.errors`) keep their meaning: usage → 400, not found → 404, refused by
policy → 409; request validation → 422 naming the field. Nothing includes a file path.
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ccvault.catalog.dialect import PgOperationalError
from ccvault.catalog.writer import CatalogUnreachable
from ccvault.config.fields import problem
from ccvault.errors import Busy, CcvaultError, NotFound, Refused, UsageError


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = dict(headers or {})


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


# Documented on every operation (app.include_router), so the schema tells clients — and the
# fuzzer's status-code check — what failures look like. 422 replaces FastAPI's own shape.
RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "bad input (a time that cannot be read, a range out of bounds)"),
        (401, "no credentials, or an unknown, expired or revoked token or session"),
        (403, "the role is too low, or a session request lacks X-CSRF-Token"),
        (404, "not found"),
        (409, "refused by policy"),
        (413, "the request body is larger than [http] max_body_bytes"),
        (422, "invalid request"),
        (429, "too many wrong tokens from this address (Retry-After)"),
        (503, "busy"),
    )
}


def error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


# Field names a library error may carry as its `what` (`to`, `--from`, `camera`…): named as
# the JSON field of the request, without the CLI's dashes.
FIELDS = ("from", "to", "at", "camera", "reason", "until", "out", "cameras", "visit")
_SERVER_PATH = re.compile(r"(?<![\w:])/[^\s,;()']+")


def unpath(text: str) -> str:
    """Library messages may name server paths; an API answer never does."""
    return _SERVER_PATH.sub("<server path>", text)


def from_library(exc: CcvaultError) -> ApiError:
    """A library error as the API tells it: its status, its field, no server path."""
    status, code = _status(exc)
    name = exc.what.removeprefix("--")
    field = name if name.split(".")[0] in FIELDS else None
    return ApiError(status, code, unpath(f"{field}: {exc.problem}" if field else str(exc)), field)


def _status(exc: CcvaultError) -> tuple[int, str]:
    if isinstance(exc, UsageError):
        return 400, "bad_request"
    if isinstance(exc, NotFound):
        return 404, "not_found"
    if isinstance(exc, Refused):
        return 409, "refused"
    if isinstance(exc, Busy):
        return 503, "busy"
    return 400, "failed"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_req: Request, exc: ApiError) -> JSONResponse:
        headers = dict(exc.headers)  # e.g. Retry-After with a 429
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(
            error_body(exc.code, exc.message, exc.field), exc.status, headers=headers or None
        )

    @app.exception_handler(CcvaultError)
    async def library_error(req: Request, exc: CcvaultError) -> JSONResponse:
        return await api_error(req, from_library(exc))

    @app.exception_handler(CatalogUnreachable)
    async def catalog_out_of_reach(req: Request, _exc: CatalogUnreachable) -> JSONResponse:
        # The writer's own word for the same outage: the same answer, no host in the body.
        return await api_error(req, ApiError(503, "busy", "catalog: unreachable", None))

    @app.exception_handler(PgOperationalError)
    async def catalog_unreachable(req: Request, _exc: PgOperationalError) -> JSONResponse:
        # The PostgreSQL catalog is down or cut off: try again later (no host in the body).
        return await api_error(req, ApiError(503, "busy", "catalog: unreachable", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path")]
        field = ".".join(loc) or None
        message = f"{field}: {problem(first)}" if field else problem(first)
        return JSONResponse(error_body("invalid", message, field), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body("http_" + str(exc.status_code), str(exc.detail)),
            exc.status_code,
            headers=exc.headers,
        )  # e.g. Allow with a 405
