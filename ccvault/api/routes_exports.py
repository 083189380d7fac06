"""HTTP routes: evidence exports (operator). A request names camera, range and reason only (or
a visit and reason: its room's cameras over the visit, with its door events);
the bundle goes to `[export] dir` — the API never takes a path, so no caller can aim it at
a directory of their choosing. The download is a tar of the bundle, streamed."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ccvault.api import params
from ccvault.api.auth import Operator
from ccvault.api.context import ApiContext
from ccvault.api.errors import ApiError, ErrorBody, unpath
from ccvault.api.params import Ctx, Id

router = APIRouter(tags=["exports"])
CHUNK = 1 << 20


class ExportIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    camera: str | None = Field(None, min_length=1, max_length=64)
    from_: str | StrictInt | None = Field(
        None, alias="from", description="ISO 8601, now, -2h…, or UTC ms."
    )
    to: str | StrictInt | None = Field(
        None, description="ISO 8601, now, -2h…, or UTC ms (exclusive)."
    )
    visit: StrictInt | None = Field(
        None,
        ge=1,
        le=2**63 - 1,  # SQLite's INTEGER; larger would be a 500
        description="A visit's id instead of camera/from/to: its room's cameras over the "
        "visit, padded, with the room's door events in the signed manifest.",
    )
    reason: str = Field(min_length=1, max_length=2000)
    out: str | None = Field(None, description="Refused (403): bundles go to [export] dir.")


class Verification(BaseModel):
    state: Literal[
        "pending", "failed_job", "elsewhere", "gone", "changed", "failed", "verified", "unchecked"
    ] = Field(
        description="pending: not done; failed_job: the export failed; elsewhere: on another "
        "node's disks; gone: expired or removed; changed: the manifest on disk is not the one "
        "recorded; failed: the last full check (`ccvault exports --verify`) found a problem; "
        "verified: it passed and the manifest is unchanged; unchecked: unchanged, never "
        "fully checked."
    )
    manifest_matches: bool | None = Field(
        description="The manifest on disk has the recorded SHA-256 (null: nothing to compare)."
    )
    checked: str | None = Field(description="The last full check of every file (UTC).")
    problem: str | None = Field(description="What that check found first (null: it passed).")


class ExportOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: int
    camera: str = Field(description="The camera; a visit's export: its cameras, comma-separated.")
    cameras: list[str]
    visit: int | None = Field(description="The visit exported (null: a camera's range).")
    from_: str = Field(alias="from")
    to: str
    reason: str
    actor: str
    state: Literal["queued", "running", "done", "failed"]
    progress: float = Field(ge=0, le=1)
    error: str | None
    created: str
    finished: str | None
    bundle: str = Field(description="The bundle directory's name (and the tar's top dir).")
    pinned: bool = Field(description="The range is pinned against retention (while it runs).")
    node: str | None = Field(description="The node that made the bundle (on its disks).")
    manifest_sha256: str | None = Field(
        description="The manifest's SHA-256 as recorded when the export finished: the "
        "identity of what was handed over (the manifest lists every file's SHA-256, signed)."
    )
    available: bool = Field(description="The bundle can be downloaded.")
    verification: Verification


def _jobs(ctx: ApiContext) -> Any:
    if ctx.exports is None:
        raise ApiError(503, "unavailable", "exports are not running in this process")
    return ctx.exports


def _job(ctx: ApiContext, export_id: int) -> dict[str, Any]:
    job = _jobs(ctx).get(export_id)
    if job is None:
        raise ApiError(404, "not_found", f"no export {export_id}")
    return job


def _public(job: dict[str, Any]) -> dict[str, Any]:
    """A job without server paths (the bundle's name stays)."""
    out = {k: v for k, v in job.items() if k != "dir"}
    if out.get("error"):
        out["error"] = unpath(out["error"])
    if out["verification"]["problem"]:
        out["verification"] = {
            **out["verification"],
            "problem": unpath(out["verification"]["problem"]),
        }
    return out


@router.post("/api/exports", status_code=202, response_model=ExportOut)
def create_export(body: ExportIn, ctx: Ctx, who: Operator, response: Response) -> dict:
    """Start an export job: 202 with its id and state; poll GET /api/exports/{id}."""
    if body.out is not None:
        raise ApiError(
            403,
            "forbidden",
            "the API takes no destination: bundles go to "
            "[export] dir (use `ccvault export --out` on the host)",
            "out",
        )
    _check_request(body)
    if body.visit is not None:
        job = _jobs(ctx).submit_visit(body.visit, body.reason, who.actor)
    else:
        assert body.camera is not None and body.from_ is not None and body.to is not None
        from_ms, to_ms = params.when(ctx, body.from_, "from"), params.when(ctx, body.to, "to")
        job = _jobs(ctx).submit(body.camera, from_ms, to_ms, body.reason, who.actor)
    response.headers["Location"] = f"/api/exports/{job['id']}"
    return _public(job)


def _check_request(body: ExportIn) -> None:
    """A camera's range or a visit, never both: 400 naming the field."""
    given = {"camera": body.camera, "from": body.from_, "to": body.to}
    if body.visit is not None:
        mixed = [name for name, value in given.items() if value is not None]
        if mixed:
            raise ApiError(
                400,
                "bad_request",
                f"{mixed[0]}: give visit, or camera, from and to — not both",
                mixed[0],
            )
        return
    for name, value in given.items():
        if value is None:
            raise ApiError(400, "bad_request", f"{name}: missing (or give visit)", name)


@router.get("/api/exports", response_model=list[ExportOut])
def list_exports(
    ctx: Ctx, who: Operator, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict]:
    """Every export, newest first, from the catalog (it outlives restarts and the bundles):
    who exported which cameras and range, when, why, where (bundle, node), its state and its
    verification. Reasons name incidents: a look is audited (`export.list`, once a minute per
    session), as footage searches are."""
    from ccvault.evidence.jobs import list_jobs

    with ctx.reader() as conn:
        jobs = [_public(job) for job in list_jobs(conn, ctx.writer.node, limit)]
    if ctx.record_due(who.session, f"export.list:{limit}", fresh=False):
        ctx.audit(who.actor, "export.list", "exports", {"limit": limit, "results": len(jobs)})
    return jobs


@router.get("/api/exports/{export_id}", response_model=ExportOut)
def get_export(export_id: Id, ctx: Ctx, _who: Operator) -> dict:
    """The job: state (queued, running, done, failed), progress 0-1, error."""
    return _public(_job(ctx, export_id))


@router.get(
    "/api/exports/{export_id}/download",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-tar": {}}, "description": "The bundle as a tar."},
        410: {"model": ErrorBody, "description": "the bundle has expired"},
    },
)
def download_export(export_id: Id, ctx: Ctx, who: Operator, request: Request) -> Response:
    """The bundle as a tar (one top directory, the bundle's name); 409 until it is done."""
    job = _job(ctx, export_id)
    if job["state"] != "done":
        raise ApiError(409, "not_ready", f"export {export_id} is {job['state']}")
    if not job["available"]:
        raise ApiError(410, "gone", f"export {export_id}'s bundle is no longer kept")
    bundle = Path(job["dir"])
    length, chunks = tar_stream(bundle)
    if ctx.record_due(who.session, f"export:{export_id}"):
        ctx.audit(
            who.actor,
            "export.download",
            f"export:{export_id}",
            {"id": export_id, "bundle": bundle.name, "manifest_sha256": job["manifest_sha256"]},
        )
    headers = {
        "Content-Length": str(length),
        "Content-Disposition": f'attachment; filename="{bundle.name}.tar"',
    }
    if request.method == "HEAD":  # the same headers, and no file is read
        return Response(media_type="application/x-tar", headers=headers)
    return StreamingResponse(chunks, media_type="application/x-tar", headers=headers)


def tar_stream(bundle: Path) -> tuple[int, Iterator[bytes]]:
    """A ustar/pax archive written a chunk at a time: headers from tarfile, file bytes read
    in 1 MiB pieces, so an hour of footage never sits in memory. Length known up front."""
    entries: list[tuple[tarfile.TarInfo, Path | None]] = []
    for path in [bundle, *sorted(bundle.rglob("*"))]:
        info = tarfile.TarInfo(path.relative_to(bundle.parent).as_posix())
        stat = path.stat()
        info.mtime = int(stat.st_mtime)
        if path.is_dir():
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            entries.append((info, None))
        else:
            info.size, info.mode = stat.st_size, 0o644
            entries.append((info, path))
    headers = [info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") for info, _ in entries]
    length = (
        sum(
            len(h) + info.size + _pad(info.size)
            for h, (info, _) in zip(headers, entries, strict=True)
        )
        + 1024
    )

    def chunks() -> Iterator[bytes]:
        for header, (info, path) in zip(headers, entries, strict=True):
            yield header
            if path is not None:
                left = info.size
                with open(path, "rb") as f:
                    while left:
                        data = f.read(min(CHUNK, left))
                        if not data:
                            raise OSError(f"{path.name} shrank while being sent")
                        left -= len(data)
                        yield data
                yield b"\0" * _pad(info.size)
        yield b"\0" * 1024

    return length, chunks()


def _pad(size: int) -> int:
    return -size % tarfile.BLOCKSIZE
