"""HTTP routes: what footage exists — cameras, segment and motion searches, day timelines.

Searches are human actions and go to the audit log (`search.segments`, `search.motion`), once
a minute per session for the same question; the timeline and motion stepping are navigation over the
same facts and are not audited. The media themselves (files, clips, stills) are served by
`routes_media`, whose router this one includes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from ccvault.api import params, routes_media
from ccvault.api.auth import Principal, Viewer
from ccvault.api.context import ApiContext
from ccvault.api.params import Ctx, From, To
from ccvault.errors import NotFound
from ccvault.host.lock import daemon_running
from ccvault.storage import peers
from ccvault.timefmt import utc_text
from ccvault.views import explain as explanation
from ccvault.views import nodes, search
from ccvault.views.models import CameraOut, ExplanationOut, SegmentOut, SpanOut, TimelineOut

router = APIRouter(prefix="/api", tags=["footage"])
router.include_router(routes_media.router)

# A search returns at most this many rows; more asks the caller to narrow the range (a year
# of one-minute segments would otherwise be one 200 MB response).
SEARCH_LIMIT = 10_000
Kind = Literal["motion", "lighting", "all"]


@router.get("/cameras", response_model=list[CameraOut])
def list_cameras(ctx: Ctx, _who: Viewer) -> list[CameraOut]:
    """Every configured camera: enabled, state (as `ccvault status`), first and last footage;
    then the cameras other nodes of the catalog record (`node`)."""
    running = daemon_running(ctx.config.lock_base, ctx.config.node.name)
    with ctx.reader() as conn:
        here = search.cameras(ctx.config, conn, running)
        return here + nodes.other_cameras(ctx.config, conn, ctx.now_ms())


@router.get("/segments", response_model=list[SegmentOut])
def find_segments(
    ctx: Ctx, who: Viewer, camera: str, start: From, end: To, motion: bool = False
) -> Response:
    """Segments overlapping [from, to), in time order; `motion`: only those near activity."""
    params.camera(ctx, camera)
    from_ms, to_ms = params.time_range(ctx, start, end)
    with ctx.reader() as conn:
        try:
            found = search.segments(conn, camera, from_ms, to_ms, motion, SEARCH_LIMIT)
        except search.TooMany:
            raise params.bad("to", f"more than {SEARCH_LIMIT} segments; narrow the range") from None
        found = nodes.mark(ctx.config, conn, found, ctx.now_ms())
    _audit_search(
        ctx, who, "search.segments", camera, from_ms, to_ms, {"motion": motion}, len(found)
    )
    return params.json_of(list[SegmentOut], found)


@router.get("/motion", response_model=list[SpanOut])
def find_motion(
    ctx: Ctx, who: Viewer, camera: str, start: From, end: To, kind: Kind = "motion"
) -> Response:
    """Motion spans overlapping [from, to): first to last moving frame."""
    params.camera(ctx, camera)
    from_ms, to_ms = params.time_range(ctx, start, end)
    with ctx.reader() as conn:
        try:
            found = search.spans(conn, camera, from_ms, to_ms, params.kinds(kind), SEARCH_LIMIT)
        except search.TooMany:
            raise params.bad("to", f"more than {SEARCH_LIMIT} spans; narrow the range") from None
    _audit_search(ctx, who, "search.motion", camera, from_ms, to_ms, {"kind": kind}, len(found))
    return params.json_of(list[SpanOut], [SpanOut.of(s) for s in found])


@router.get("/motion/next", response_model=SpanOut)
def next_motion(
    ctx: Ctx,
    _who: Viewer,
    camera: str,
    after: Annotated[str, Query(max_length=64)],
    kind: Kind = "motion",
) -> SpanOut:
    """The first span starting after `after`, however many days later; 404 when none."""
    return _step(ctx, camera, params.when(ctx, after, "after"), True, kind)


@router.get("/motion/prev", response_model=SpanOut)
def prev_motion(
    ctx: Ctx,
    _who: Viewer,
    camera: str,
    before: Annotated[str, Query(max_length=64)],
    kind: Kind = "motion",
) -> SpanOut:
    """The last span starting before `before`, however many days earlier; 404 when none."""
    return _step(ctx, camera, params.when(ctx, before, "before"), False, kind)


def _step(ctx: ApiContext, camera: str, at_ms: int, forward: bool, kind: str) -> SpanOut:
    params.camera(ctx, camera)
    with ctx.reader() as conn:
        found = search.step_span(conn, camera, at_ms, forward, params.kinds(kind))
    if found is None:
        raise NotFound(
            f"{kind} of {camera}", f"none {'after' if forward else 'before'} {utc_text(at_ms)}"
        )
    return SpanOut.of(found)


@router.get("/explain", response_model=ExplanationOut)
def explain_footage(
    ctx: Ctx, _who: Viewer, camera: str, at: Annotated[str, Query(max_length=64)]
) -> ExplanationOut:
    """Why the camera's footage at `at` is kept and until when, or what the next retention
    pass does with it (as `ccvault explain`); 404 saying why when there is none (deleted:
    when, by whom, under which rule). Another node's camera is asked of that node, which
    alone can say (503 when it cannot be asked now)."""
    params.camera(ctx, camera)
    at_ms, me = params.when(ctx, at, "at"), ctx.config.node.name
    with ctx.reader() as conn:
        owner = explanation.owner_elsewhere(conn, camera, me)
        if owner is None:
            return explanation.explain(ctx.config, conn, ctx.volumes(), camera, at_ms, ctx.now_ms())
        remote = peers.Remote.of_node(conn, owner, me, ctx.now_ms(), ctx.config.tz, f"node {owner}")
    return explanation.ask(ctx.config.node, remote, camera, at_ms)


@router.get("/timeline", response_model=TimelineOut)
def day_timeline(
    ctx: Ctx,
    _who: Viewer,
    camera: str,
    date: Annotated[str, Query(max_length=10, description="YYYY-MM-DD")],
) -> Response:
    """One local calendar day (`date` in the configured zone): per-minute coverage, gaps,
    motion minutes and count, active holds."""
    params.camera(ctx, camera)
    day = params.day(date)
    with ctx.reader() as conn:
        return params.json_of(
            TimelineOut, search.timeline(ctx.config, conn, camera, day, ctx.now_ms())
        )


def _audit_search(
    ctx: ApiContext,
    who: Principal,
    action: str,
    camera: str,
    from_ms: int,
    to_ms: int,
    question: dict,
    results: int,
) -> None:
    """One record per question per session and minute (`ApiContext.record_due`): a page
    re-asking the same search at once adds none, the same question later is a new record."""
    key = f"{action}:{camera}:{from_ms}:{to_ms}:{sorted(question.items())}"
    if ctx.record_due(who.session, key, fresh=False):
        ctx.audit(
            who.actor,
            action,
            f"camera:{camera}",
            {
                "camera": camera,
                "from": utc_text(from_ms),
                "to": utc_text(to_ms),
                "from_ms": from_ms,
                "to_ms": to_ms,
                **question,
                "results": results,
            },
        )
