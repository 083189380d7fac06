"""HTTP routes: access events in (the integration role: an access system), and what they made —
events, visits, occupancy — out (viewers; every read audited: they are personal data)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ccvault.access.events import MAX_BATCH
from ccvault.access.log import AccessLog
from ccvault.api import params
from ccvault.api.auth import Integration, Principal, Viewer
from ccvault.api.context import ApiContext
from ccvault.api.errors import ApiError
from ccvault.api.params import Ctx, From, Id, To
from ccvault.timefmt import utc_text
from ccvault.views import access
from ccvault.views.access import AccessEventOut, RoomOccupancyOut, VisitOut

router = APIRouter(prefix="/api", tags=["access"])
LIST_LIMIT = 10_000


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Any] = Field(
        max_length=MAX_BATCH,
        description="Access events: id, time (ISO 8601 or UTC ms), door, person, role "
        "(optional), direction (in|out), result (granted|denied|forced|held_open).",
    )


class RejectedOut(BaseModel):
    index: int
    reason: str


class RecordedOut(BaseModel):
    accepted: int = Field(description="New events stored.")
    duplicates: int = Field(description="Events already stored (same id): not stored again.")
    rejected: list[RejectedOut] = Field(description="Refused events, by index, with why.")


def _log(ctx: ApiContext) -> AccessLog:
    if ctx.access is None:
        raise ApiError(503, "unavailable", "access events are not taken by this process")
    return ctx.access


@router.post("/access-events", response_model=RecordedOut)
def post_events(body: EventsIn, ctx: Ctx, who: Integration) -> dict[str, Any]:
    """Door events from an access system, up to 1,000 a request. Each event is judged on its
    own: bad ones are named by index and reason; the rest are stored, each once (by id)."""
    return _log(ctx).record(body.events, f"http:{who.name}").as_json()


@router.get("/access-events", response_model=list[AccessEventOut])
def list_events(ctx: Ctx, who: Viewer, start: From, end: To) -> list[AccessEventOut]:
    """Door events in [from, to), in time order."""
    from_ms, to_ms = params.time_range(ctx, start, end)
    with ctx.reader() as conn:
        try:
            found = access.events(conn, from_ms, to_ms, LIST_LIMIT)
        except access.TooMany:
            raise params.bad("to", f"more than {LIST_LIMIT} events; narrow the range") from None
    _audit(
        ctx,
        who,
        "access.events",
        {"from": utc_text(from_ms), "to": utc_text(to_ms), "results": len(found)},
    )
    return found


@router.get("/visits", response_model=list[VisitOut])
def list_visits(
    ctx: Ctx,
    who: Viewer,
    start: From,
    end: To,
    room: Annotated[str | None, Query(max_length=64)] = None,
    person: Annotated[str | None, Query(max_length=128)] = None,
) -> list[VisitOut]:
    """Visits overlapping [from, to), of one room or one person if given."""
    from_ms, to_ms = params.time_range(ctx, start, end)
    if room is not None and ctx.config.access.room(room) is None:
        raise ApiError(404, "not_found", f"room {room!r} is not in the config", "room")
    with ctx.reader() as conn:
        try:
            found = access.visits(conn, ctx.config, from_ms, to_ms, room, person, LIST_LIMIT)
        except access.TooMany:
            raise params.bad("to", f"more than {LIST_LIMIT} visits; narrow the range") from None
    _audit(
        ctx,
        who,
        "access.visits",
        {
            "from": utc_text(from_ms),
            "to": utc_text(to_ms),
            "room": room,
            "person": person,
            "results": len(found),
        },
    )
    return found


@router.get("/visits/{visit_id}", response_model=VisitOut)
def get_visit(ctx: Ctx, who: Viewer, visit_id: Id) -> VisitOut:
    with ctx.reader() as conn:
        found = access.visit(conn, ctx.config, visit_id)
    if found is None:
        raise ApiError(404, "not_found", f"no visit {visit_id}")
    _audit(ctx, who, "access.visit", {"visit": visit_id})
    return found


@router.get("/occupancy", response_model=list[RoomOccupancyOut])
def occupancy(ctx: Ctx, who: Viewer) -> list[RoomOccupancyOut]:
    """Who is inside each room now, by the door log."""
    with ctx.reader() as conn:
        rooms = access.occupancy(conn, ctx.config)
    _audit(ctx, who, "access.occupancy", {"rooms": {r.room: r.count for r in rooms}})
    return rooms


def _audit(ctx: ApiContext, who: Principal, action: str, details: dict[str, Any]) -> None:
    ctx.audit(who.actor, action, "access", details)
