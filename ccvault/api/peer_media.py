"""A segment another node holds, played through this node: streamed from the owner's API
(`storage.peers`), Range requests passed on, the view audited here as a local one is (and
again by the owner, under this node's peer user)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from ccvault.api.auth import Principal
from ccvault.api.context import ApiContext
from ccvault.api.streaming import starts_playback
from ccvault.catalog import queries
from ccvault.catalog.rows import Segment
from ccvault.storage import peers
from ccvault.timefmt import utc_text

FORWARDED = ("range", "if-range")


def remote_segment(
    ctx: ApiContext,
    who: Principal,
    segment_id: int,
    request: Request,
    headers_of: Callable[[Segment], dict[str, str]],
) -> Response | None:
    """The owner's bytes when another node holds the segment; None when this one does (or
    there is no such segment: the local path says so). 503 `unavailable (node b down since
    …)` when its node cannot serve it now. Of the owner's answer only its status and byte
    range pass: what the bytes are said to be (type, name, times, ETag) comes from the row,
    so a node cannot make this one serve a page as its own."""
    me = ctx.config.node.name
    with ctx.reader() as conn:
        found = queries.segments_by_ids(conn, [segment_id])
        if not found:
            return None
        seg = found[0]
        remote = peers.Remote.of(conn, seg, me, ctx.now_ms(), ctx.config.tz)
    if remote is None:
        return None
    headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
    answer = peers.open_segment(ctx.config.node, remote, segment_id, headers)
    audit_segment_view(ctx, who, seg, request, {"node": seg.node})
    passed = {k: v for k in peers.PASSED_ON if (v := answer.headers.get(k)) is not None}
    if seg.integrity != "corrupt":
        passed["etag"] = f'"{seg.sha256}"'
    return StreamingResponse(
        peers.chunks(answer),
        status_code=answer.status if answer.status in (200, 206) else 502,
        headers={**headers_of(seg), **passed},
        media_type="video/mp4",
    )


def audit_segment_view(
    ctx: ApiContext, who: Principal, seg: Segment, request: Request, where: dict[str, object]
) -> None:
    """One `view.segment` record per playback (not per Range request), local or streamed
    from another node alike; `where` names the node for a streamed one."""
    if ctx.record_due(who.session, f"segment:{seg.id}", starts_playback(request)):
        ctx.audit(
            who.actor,
            "view.segment",
            f"segment:{seg.id}",
            {
                "camera": seg.camera,
                **where,
                "start": utc_text(seg.start_ms),
                "end": utc_text(seg.end_ms),
                "start_ms": seg.start_ms,
                "end_ms": seg.end_ms,
                "sha256": seg.sha256,
                "integrity": seg.integrity,
            },
        )
