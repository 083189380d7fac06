"""HTTP routes: the footage itself — a segment's original file, a clip of a range, a still.

Every view is audited (`view.segment`, `view.clip`, `view.still`): each playback — a request
from the file's start — and at least once a minute of any other access, but not once per range
request a player makes (`ApiContext.record_due`). Files are opened before the response starts,
so footage purged meanwhile is a clean 404 and footage purged mid-stream is still sent in full
(the open descriptor keeps it). Requests name cameras and ids only; no response carries a path.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

import structlog
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from ccvault.api import params
from ccvault.api.auth import Principal, Viewer
from ccvault.api.context import ApiContext
from ccvault.api.errors import ApiError
from ccvault.api.params import Ctx, From, Id, To
from ccvault.api.peer_media import audit_segment_view, remote_segment
from ccvault.api.streaming import OpenFileResponse, starts_playback
from ccvault.catalog import queries
from ccvault.catalog.rows import Segment
from ccvault.errors import NotFound
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.storage import clips
from ccvault.storage.objects import ObjectFile
from ccvault.timefmt import utc_text

router = APIRouter()
log = structlog.get_logger("ccvault.api.media")
PRIVATE = {"cache-control": "private, no-store"}  # footage is personal data: no shared caches
CORRUPT = "corrupt"  # segments.integrity: the file failed its hash when last read
CLIP_LEFTOVER_S = 3600  # clip work files older than this were left by a crash


@router.get(
    "/segments/{segment_id}/file",
    response_class=Response,
    responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "A range"}},
)
def segment_file(ctx: Ctx, who: Viewer, segment_id: Id, request: Request) -> Response:
    """The segment's original file, byte ranges supported (206). X-Ccvault-Integrity: the
    scrub's verdict on it (unchecked, ok, corrupt); a corrupt file is served as it is, marked
    so, and never with an ETag (its catalogued hash names bytes it no longer holds). A segment
    another node holds is streamed from that node (503 while it cannot serve it)."""
    remote = remote_segment(ctx, who, segment_id, request, segment_headers)
    if remote is not None:
        return remote
    seg, fd = open_segment(ctx, segment_id)
    with _closing_on_error(fd):
        audit_segment_view(ctx, who, seg, request, {})
        corrupt = seg.integrity == CORRUPT
        return OpenFileResponse(
            fd,
            request.headers,
            "video/mp4",
            segment_headers(seg),
            etag=None if corrupt else f'"{seg.sha256}"',
            on_whole=None if corrupt else functools.partial(_check_whole, ctx, seg),
        )


def segment_headers(seg: Segment) -> dict[str, str]:
    """What a segment's file is said to be, from its row (whichever node sends the bytes)."""
    name = f"{seg.camera}-{utc_text(seg.start_ms).replace(':', '')}.mp4"
    return {
        **PRIVATE,
        "content-disposition": f'inline; filename="{name}"',
        "x-ccvault-start": utc_text(seg.start_ms),
        "x-ccvault-end": utc_text(seg.end_ms),
        "x-ccvault-integrity": seg.integrity,
    }


def _check_whole(ctx: ApiContext, seg: Segment, digest: str) -> None:
    """A playback that read the whole file has hashed it for free: a file that no longer
    matches its row is flagged corrupt at once, as the scrub would (later requests get the
    verdict, the `segment_corrupt` alert reads it), instead of waiting for the scrub's turn —
    unless the row moved on meanwhile (thinned, migrated: the new file is another's)."""
    if digest == seg.sha256:
        return
    with ctx.reader() as conn:
        now = queries.segments_by_ids(conn, [seg.id])
    if not now or (now[0].volume, now[0].path, now[0].sha256) != (seg.volume, seg.path, seg.sha256):
        return
    ctx.writer.segments.set_integrity(seg.id, CORRUPT, ctx.now_ms(), advance_scrub=False)
    log.error(
        "segment_corrupt",
        camera=seg.camera,
        segment_id=seg.id,
        volume=seg.volume,
        expected=seg.sha256,
        found=digest,
        by="playback",
    )


def open_segment(ctx: ApiContext, segment_id: int) -> tuple[Segment, int | ObjectFile]:
    """The segment's row and an open descriptor on its file (on an s3 volume: its object,
    read by ranged GETs). A file that moved (migrated, thinned) or went (purged) between
    reading the row and opening it: the row is read again."""
    for _attempt in range(2):
        with ctx.reader() as conn:
            found = queries.segments_by_ids(conn, [segment_id])
        if not found:
            raise NotFound(f"segment {segment_id}", "no such segment")
        seg = found[0]
        if seg.state != "ok":
            raise NotFound(f"segment {segment_id}", "its file is missing")
        volume = next((v for v in ctx.volumes() if v.name == seg.volume), None)
        if volume is None or not volume.available:
            raise ApiError(
                503, "unavailable", f"segment {segment_id}: volume {seg.volume} is not available"
            )
        if volume.bucket is not None:
            return seg, ObjectFile(volume.bucket, seg.path, seg.bytes)
        try:
            return seg, os.open(volume.path / seg.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
    raise NotFound(f"segment {segment_id}", "its file is gone")


@router.get("/clip.mp4", response_class=Response, responses={200: {"content": {"video/mp4": {}}}})
def clip(ctx: Ctx, who: Viewer, request: Request, camera: str, start: From, end: To) -> Response:
    """[from, to) as one MP4 joined by stream copy, starting at the keyframe at or before
    `from`; X-Ccvault-Start/End give the range it actually shows."""
    params.camera(ctx, camera)
    from_ms, to_ms = params.time_range(ctx, start, end)
    _check_clip_length(ctx, who, to_ms - from_ms)
    with ctx.reader() as conn:
        found = queries.segments_in_range(conn, camera, from_ms, to_ms)
    work = ctx.config.state_dir / ".clips"
    work.mkdir(mode=0o700, exist_ok=True)
    _sweep(work)
    out = work / f"{uuid.uuid4().hex}.mp4"
    fetched: list[Path] = []  # archived segments copied here for ffmpeg, removed after
    try:
        files = _clip_files(ctx, found, work, fetched)
        if not files:
            raise NotFound(f"clip of {camera}", "no footage in that range")
        got = clips.join(ffmpeg_binary(ctx.config), files, from_ms, to_ms, out)
        fd = os.open(out, os.O_RDONLY | os.O_CLOEXEC)
    finally:
        out.unlink(missing_ok=True)  # the open descriptor keeps the bytes until sent
        for path in fetched:
            path.unlink(missing_ok=True)
    verdict = worst(s.integrity for s, _ in files)
    with _closing_on_error(fd):
        if ctx.record_due(
            who.session, f"clip:{camera}:{from_ms}:{to_ms}", starts_playback(request)
        ):
            ctx.audit(
                who.actor,
                "view.clip",
                f"camera:{camera}",
                {
                    "camera": camera,
                    "from": utc_text(from_ms),
                    "to": utc_text(to_ms),
                    "from_ms": from_ms,
                    "to_ms": to_ms,
                    "start_ms": got.start_ms,
                    "end_ms": got.end_ms,
                    "segments": [s.id for s, _ in files],
                    "integrity": verdict,
                },
            )
        name = f"{camera}-{utc_text(got.start_ms).replace(':', '')}.mp4"
        return OpenFileResponse(
            fd,
            request.headers,
            "video/mp4",
            {
                **PRIVATE,
                "content-disposition": f'inline; filename="{name}"',
                "x-ccvault-start": utc_text(got.start_ms),
                "x-ccvault-end": utc_text(got.end_ms),
                "x-ccvault-integrity": verdict,
            },
        )


def _clip_files(
    ctx: ApiContext, found: list[Segment], work: Path, fetched: list[Path]
) -> list[tuple[Segment, Path]]:
    """The range's segment files: on a disk where they lie; on an s3 volume copied into the
    clip work directory first (listed in `fetched`, for the caller to remove)."""
    volumes = {v.name: v for v in ctx.volumes() if v.available}
    out = []
    for seg in found:
        volume = volumes.get(seg.volume)
        if seg.state != "ok" or volume is None:
            continue
        if volume.bucket is None:
            path = (volume.path or work) / seg.path
            if path.is_file():
                out.append((seg, path))
            continue
        path = work / f"{uuid.uuid4().hex}.s3.mp4"
        fetched.append(path)
        with open(path, "wb") as f:
            ObjectFile(volume.bucket, seg.path, seg.bytes).to_file(f)
        out.append((seg, path))
    return out


def _check_clip_length(ctx: ApiContext, who: Principal, length_ms: int) -> None:
    """A viewer watches short clips; longer ones are an export's (operators up to its limit)."""
    if who.role == "viewer":
        limit_ms, limit = ctx.config.http.viewer_clip_minutes * 60_000, "viewer_clip_minutes"
    else:
        limit_ms, limit = round(ctx.config.export.max_hours * 3_600_000), "export.max_hours"
    if length_ms > limit_ms:
        raise params.bad(
            "to", f"a {who.role}'s clip may be at most {limit_ms // 60_000} minutes long ({limit})"
        )


def _sweep(work: Path) -> None:
    """Clip files a crash left behind (a served clip is unlinked before it is sent)."""
    cutoff = time.time() - CLIP_LEFTOVER_S
    for leftover in work.iterdir():
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


@router.get(
    "/cameras/{name}/still.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def still(
    ctx: Ctx,
    who: Viewer,
    name: Annotated[str, PathParam(max_length=64)],
    at: Annotated[str, Query(max_length=64)],
) -> Response:
    """A JPEG of the keyframe at or before `at` (X-Ccvault-At: that frame's time)."""
    params.camera(ctx, name, "name")
    at_ms = params.when(ctx, at, "at")
    with ctx.reader() as conn:
        found = [
            s for s in queries.segments_in_range(conn, name, at_ms, at_ms + 1) if s.state == "ok"
        ]
    if not found:
        raise NotFound(f"footage of {name}", f"none at {utc_text(at_ms)}")
    seg, source = open_segment(ctx, found[-1].id)
    with _local(source) as file:
        offset_ms, jpeg = keyframe_jpeg(file, at_ms - seg.start_ms)
    frame_ms = seg.start_ms + offset_ms
    if ctx.record_due(who.session, f"still:{seg.id}"):
        ctx.audit(
            who.actor,
            "view.still",
            f"segment:{seg.id}",
            {
                "camera": name,
                "at": utc_text(at_ms),
                "frame": utc_text(frame_ms),
                "frame_ms": frame_ms,
                "integrity": seg.integrity,
            },
        )
    return Response(
        jpeg,
        media_type="image/jpeg",
        headers={
            **PRIVATE,
            "x-ccvault-at": utc_text(frame_ms),
            "x-ccvault-integrity": seg.integrity,
        },
    )


def worst(verdicts: Iterable[str]) -> str:
    """The verdict of footage made of several files: corrupt if any is, else unchecked if
    any is, else ok."""
    found = set(verdicts)
    return next((v for v in (CORRUPT, "unchecked") if v in found), "ok")


def keyframe_jpeg(file: object, offset_ms: int) -> tuple[int, bytes]:
    """(ms into the file, JPEG) of the last keyframe at or before offset_ms: demux to find
    it, decode that one packet only (a keyframe needs no other)."""
    import av
    import cv2

    with av.open(file) as container:
        stream = container.streams.video[0]
        origin = stream.start_time or 0
        best, best_ms = None, 0
        for packet in container.demux(stream):
            if packet.pts is None or not packet.is_keyframe:
                continue
            at = int((packet.pts - origin) * packet.time_base * 1000)
            if at > offset_ms and best is not None:
                break
            best, best_ms = packet, at
        if best is None:
            raise NotFound("still", "the segment holds no keyframe")
        frames = [*stream.codec_context.decode(best), *stream.codec_context.decode(None)]
    if not frames:
        raise NotFound("still", "the keyframe did not decode")
    ok, jpeg = cv2.imencode(
        ".jpg", frames[0].to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, 85]
    )
    if not ok:
        raise ApiError(500, "encode_failed", "could not encode the still")
    return best_ms, jpeg.tobytes()


@contextlib.contextmanager
def _closing_on_error(fd: int | ObjectFile) -> Iterator[None]:
    """Until a response owns fd, an error (an audit write that failed) must close it."""
    try:
        yield
    except BaseException:
        if isinstance(fd, int):
            os.close(fd)
        raise


def _local(source: int | ObjectFile) -> BinaryIO:
    """A seekable file of the segment's bytes: its own, or an archived object's copy in an
    unnamed temporary file (a still needs to seek; the copy goes when it is closed)."""
    if isinstance(source, int):
        return os.fdopen(source, "rb")
    file = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    try:
        source.to_file(file)
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return file
