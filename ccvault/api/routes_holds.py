"""HTTP routes: holds — list (viewer), add and release (operator).

The same `retention.holds` functions as `ccvault hold`, so the catalog writer audits every
change (`hold.add`, `hold.release`) with the person as actor (`api:<user>`). Fields are
checked here first so each error names the JSON field, not a CLI option.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query

from ccvault.api import params
from ccvault.api.auth import Operator, Viewer
from ccvault.api.context import ApiContext
from ccvault.api.params import Ctx, Id
from ccvault.errors import NotFound
from ccvault.retention import holds
from ccvault.views.models import HoldIn, HoldOut, ReleaseIn
from ccvault.views.search import holds_overlapping

router = APIRouter(prefix="/api/holds", tags=["holds"])


@router.get("", response_model=list[HoldOut])
def list_holds(
    ctx: Ctx,
    _who: Viewer,
    camera: str | None = None,
    start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    state: Literal["active", "expired", "released"] | None = None,
) -> list[HoldOut]:
    """Holds covering `camera` (a hold without cameras covers all) and overlapping
    [from, to); `state`: active, expired or released (default: every hold)."""
    if camera is not None:
        params.camera(ctx, camera)
    from_ms = params.when(ctx, start, "from") if start is not None else None
    to_ms = params.when(ctx, end, "to") if end is not None else None
    if from_ms is not None and to_ms is not None:
        params.time_range(ctx, start or "", end or "")
    with ctx.reader() as conn:
        found = holds_overlapping(conn, camera, from_ms, to_ms, ctx.now_ms())
    return [h for h in found if state is None or h.state == state]


@router.post("", response_model=HoldOut, status_code=201)
def add_hold(ctx: Ctx, who: Operator, body: HoldIn) -> HoldOut:
    """Hold footage beyond any policy; returns the new hold."""
    for i, name in enumerate(body.cameras):
        params.camera(ctx, name, f"cameras.{i}")
    from_ms, to_ms = params.time_range(ctx, body.from_, body.to)
    now_ms = ctx.now_ms()
    until_ms = params.when(ctx, body.until, "until") if body.until is not None else None
    if until_ms is not None and until_ms <= now_ms:
        raise params.bad("until", "is already past")
    if not body.reason.strip():
        raise params.bad("reason", "must say why footage is held")
    hold_id = holds.add(
        ctx.writer,
        ctx.config,
        tuple(body.cameras),
        from_ms,
        to_ms,
        body.reason,
        until_ms,
        who.actor,
        now_ms,
    )
    return _hold(ctx, hold_id)


@router.delete("/{hold_id}", response_model=HoldOut)
def release_hold(
    ctx: Ctx, who: Operator, hold_id: Id, body: Annotated[ReleaseIn, Body()]
) -> HoldOut:
    """End a hold (the body's `reason` goes to the audit log); 409 if already released."""
    if not body.reason.strip():
        raise params.bad("reason", "must say why the hold ends")
    holds.release(ctx.writer, hold_id, body.reason, who.actor, ctx.now_ms(), ctx.config)
    return _hold(ctx, hold_id)


def _hold(ctx: ApiContext, hold_id: int) -> HoldOut:
    with ctx.reader() as conn:
        found = [h for h in holds.listing(conn, ctx.now_ms()) if h["id"] == hold_id]
    if not found:
        raise NotFound(f"hold {hold_id}", "no such hold")
    return HoldOut.model_validate(found[0])
