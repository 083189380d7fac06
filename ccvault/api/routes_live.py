"""HTTP route: a camera live, as the fragmented MP4 its recorder copies out (`recorder/live.py`).

`GET /api/cameras/{name}/live` answers with one endless `video/mp4` body: the init segment,
then fragments as the recorder writes them; its Content-Type names the codec
(`video/mp4; codecs="avc1.64001f"`), which the page hands to Media Source Extensions. The body
ends when the recording run ends (a reconnect, a restart: ask again) or when this client
falls more than `live.VIEWER_BUFFER` behind (it is dropped, never waited for). Viewers and up;
each start is audited (`view.live`), as a playback is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse

from ccvault.api import params
from ccvault.api.auth import Viewer
from ccvault.api.connections import ABORT
from ccvault.api.context import ApiContext
from ccvault.api.errors import ApiError
from ccvault.api.params import Ctx
from ccvault.recorder.live import LiveRelay, ViewerEnd
from ccvault.recorder.live import Viewer as LiveViewer

router = APIRouter(prefix="/api", tags=["footage"])
log = structlog.get_logger("ccvault.api.live")
MAX_VIEWERS = 64  # live viewers at once, all cameras: each may hold VIEWER_BUFFER bytes


@router.get(
    "/cameras/{name}/live",
    response_class=Response,
    responses={200: {"content": {"video/mp4": {}}}},
)
def live(
    ctx: Ctx, who: Viewer, name: Annotated[str, PathParam(max_length=64)], request: Request
) -> Response:
    """The camera live: fragmented MP4 from the recorder's own stream copy, no transcoding.
    503 while the camera has no live picture (connecting, offline: retry); 409 for a disabled
    camera, another node's, or where live view is off (`[recording] live_view = false`). A
    HEAD answers the headers and starts nothing (no viewer, no audit record)."""
    params.camera(ctx, name, "name")
    relay = _relay(ctx, name)
    codec = relay.codec(name)
    if codec is None:
        raise ApiError(
            503,
            "unavailable",
            f"camera {name!r} has no live picture now (not recording); retry later",
            headers={"retry-after": "5"},
        )
    headers = {"cache-control": "private, no-store"}
    media_type = f'video/mp4; codecs="{codec}"'
    if request.method == "HEAD":  # the answer's headers only: no viewer, nothing watched
        return Response(media_type=media_type, headers=headers)
    if relay.viewers() >= MAX_VIEWERS:
        raise ApiError(503, "busy", f"{MAX_VIEWERS} live viewers already; retry later")
    viewer = LiveViewer(name)
    if not relay.join(viewer):  # the run ended since: as if asked a moment later
        raise ApiError(503, "unavailable", f"camera {name!r} has no live picture now")
    try:
        if ctx.record_due(who.session, f"live:{name}"):
            ctx.audit(who.actor, "view.live", f"camera:{name}", {"camera": name})
    except BaseException:
        relay.leave(viewer)
        raise
    return StreamingResponse(
        _body(relay, viewer, request.scope.get("state", {}).get(ABORT)),
        media_type=media_type,
        headers=headers,
    )


def _relay(ctx: ApiContext, name: str) -> LiveRelay:
    if ctx.config.camera(name) is None:  # params.camera found it in another node's records
        raise ApiError(
            409, "refused", f"camera {name!r} is recorded by another node: watch it live there"
        )
    camera = ctx.config.camera(name)
    if camera is not None and not camera.enabled:
        raise ApiError(409, "refused", f"camera {name!r} is disabled: nothing is live")
    if not ctx.config.recording.live_view:
        raise ApiError(409, "refused", "live view is off on this node ([recording] live_view)")
    if ctx.live is None:
        raise ApiError(503, "unavailable", "live view is not served by this process")
    return ctx.live


async def _body(
    relay: LiveRelay, viewer: LiveViewer, abort: Callable[[], None] | None
) -> AsyncIterator[bytes]:
    """What the relay queued for this viewer, as it comes, until its stream ends. Runs on the
    event loop: the relay's thread only sets an event (never waits for this client). A viewer
    dropped as too slow is most likely blocked in a send to a client that reads nothing: its
    connection is aborted (`connections.ABORT`), which ends that send too."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()

    dropped = False

    def woken() -> None:
        nonlocal dropped
        ready.set()
        if viewer.end is ViewerEnd.TOO_SLOW and not dropped:
            dropped = True
            log.warning("live.viewer_dropped", camera=viewer.camera, reason="too slow")
            if abort is not None:
                abort()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the server stopped
            loop.call_soon_threadsafe(woken)

    viewer.wake = wake
    try:
        while True:
            ready.clear()
            data = viewer.take()
            if data:
                yield data
            elif viewer.end is not None:
                return
            else:
                await ready.wait()
    finally:
        relay.leave(viewer)
