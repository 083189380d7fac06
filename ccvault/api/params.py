"""Reading request parameters the one way the CLI reads them, with errors that name the field.

Times go through `timefmt.parse_time` (the configured zone; DST-ambiguous times refused);
cameras must be configured ones — a request names footage by camera and id, never by path.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response
from pydantic import TypeAdapter

from ccvault.api.auth import context
from ccvault.api.context import ApiContext
from ccvault.api.errors import ApiError
from ccvault.catalog.nodes import is_known_camera
from ccvault.errors import UsageError
from ccvault.timefmt import LATEST_MS, ordered, parse_time

_ADAPTERS: dict[object, TypeAdapter] = {}


def json_of(kind: object, value: object) -> Response:
    """`value` serialised by its response model, sent as is. Returned from a sync handler,
    this spares FastAPI validating our own models again in one more threadpool hop (~0.4 ms
    of a ~4 ms search here); the route still declares `response_model` for the schema."""
    adapter = _ADAPTERS.get(kind) or _ADAPTERS.setdefault(kind, TypeAdapter(kind))
    return Response(adapter.dump_json(value, by_alias=True), media_type="application/json")


def bad(field: str, message: str) -> ApiError:
    return ApiError(400, "bad_request", f"{field}: {message}", field)


def when(ctx: ApiContext, value: str | int, field: str) -> int:
    """A time as people type it (the configured zone), or UTC ms from a program."""
    if isinstance(value, int):
        if not 0 <= value <= LATEST_MS:
            raise bad(field, f"{value} is outside 1970-01-01 to 9999-12-31")
        return value
    try:
        return parse_time(value, ctx.config.tz, ctx.now_ms(), field)
    except UsageError as exc:
        raise bad(field, exc.problem) from None


def time_range(ctx: ApiContext, start: str | int, end: str | int) -> tuple[int, int]:
    from_ms, to_ms = when(ctx, start, "from"), when(ctx, end, "to")
    try:
        ordered(from_ms, to_ms)
    except UsageError as exc:
        raise bad(exc.what, exc.problem) from None
    return from_ms, to_ms


def camera(ctx: ApiContext, name: str, field: str = "camera") -> None:
    """A camera of this node's config, or one another node of the catalog records."""
    if ctx.config.camera(name) is not None:
        return
    with ctx.reader() as conn:
        if is_known_camera(ctx.config, conn, name):
            return
    raise ApiError(404, "not_found", f"camera {name!r} is not in the config", field)


def day(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise bad("date", f"cannot read {text!r} (use YYYY-MM-DD)") from None
    if not date(1970, 1, 2) <= day <= date(9999, 12, 30):
        raise bad("date", f"{text} is outside 1970-01-02 to 9999-12-30")
    return day


def kinds(kind: str) -> tuple[str, ...]:
    if kind not in ("motion", "lighting", "all"):
        raise bad("kind", "must be motion, lighting or all")
    return ("motion", "lighting") if kind == "all" else (kind,)


async def _context(request: Request) -> ApiContext:
    """auth.context as an async dependency: a sync one costs a threadpool hop per request."""
    return context(request)


# Handler parameter types (Annotated, so defaults stay plain values); the caller's role comes
# from auth's `Viewer` / `Operator`.
Ctx = Annotated[ApiContext, Depends(_context)]
From = Annotated[str, Query(alias="from", max_length=64, description="ISO 8601, now, -2h…")]
To = Annotated[str, Query(alias="to", max_length=64, description="End (exclusive).")]
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]  # SQLite's INTEGER; larger would be a 500
