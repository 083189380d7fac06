"""What may be exported, and where: checked before anything is recorded, so a refused
request leaves no job, no pin and no audit record. Errors name the request's field."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ccvault.catalog import queries
from ccvault.catalog.nodes import is_known_camera
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.config.places import Place, Role, refusal
from ccvault.errors import NotFound, Refused, UsageError
from ccvault.evidence import visit
from ccvault.evidence.visit import VisitRequest
from ccvault.text import plain_text, size_text
from ccvault.timefmt import ordered, utc_text

HOUR_MS = 3_600_000
CLIP_FACTOR = 2.1  # bundle bytes per segment byte: the copies, the joined clip, a little more
SPACE_MARGIN = 64 << 20


def validate(
    config: Config,
    writer: CatalogWriter,
    camera: str,
    from_ms: int,
    to_ms: int,
    reason: str,
    out_dir: Path | None = None,
) -> Path | None:
    """Refuse before anything is recorded. Errors name the field (`camera`, `to`, `out`,
    `reason`). Returns the resolved bundle directory (None: one in [export] dir)."""
    _check_reason(reason)
    with writer.reader() as conn:
        known = is_known_camera(config, conn, camera)  # another node's is exported from it
    if not known:
        raise NotFound("camera", f"{camera!r} is not a configured camera")
    ordered(from_ms, to_ms)
    _check_length(config, from_ms, to_ms, "to")
    return _check_footage(config, writer, [camera], from_ms, to_ms, out_dir, "from")


def validate_visit(
    config: Config,
    writer: CatalogWriter,
    visit_id: int,
    reason: str,
    now_ms: int,
    out_dir: Path | None = None,
) -> tuple[VisitRequest, Path | None]:
    """As `validate`, for a visit's export: its room's cameras over the padded visit
    (`visit.request`). Errors name `visit` (or `reason`, `out`)."""
    _check_reason(reason)
    asked = visit.request(config, writer, visit_id, now_ms)
    _check_length(config, asked.from_ms, asked.to_ms, "visit")
    final = _check_footage(
        config, writer, list(asked.cameras), asked.from_ms, asked.to_ms, out_dir, "visit"
    )
    return asked, final


def _check_reason(reason: str) -> None:
    if not plain_text(reason, "reason").strip():
        raise UsageError("reason", "must not be empty (it goes into the manifest)")


def _check_length(config: Config, from_ms: int, to_ms: int, field: str) -> None:
    limit = config.export.max_hours
    if to_ms - from_ms > limit * HOUR_MS:
        raise Refused(
            field,
            f"the range is {(to_ms - from_ms) / HOUR_MS:.2f} h, more than "
            f"[export] max_hours ({limit:g} h)",
        )


def _check_footage(
    config: Config,
    writer: CatalogWriter,
    cameras: list[str],
    from_ms: int,
    to_ms: int,
    out_dir: Path | None,
    field: str,
) -> Path | None:
    """Some footage of the cameras in the range, the destination allowed, room for it."""
    final = None if out_dir is None else destination(config, out_dir)
    with writer.reader() as conn:
        found = [
            s
            for camera in cameras
            for s in queries.segments_in_range(conn, camera, from_ms, to_ms)
            if s.state == "ok"
        ]
    if not found:
        raise NotFound(
            field,
            f"no footage of {', '.join(cameras)} between {utc_text(from_ms)} and {utc_text(to_ms)}",
        )
    where = final.parent if final is not None else config.export_dir
    need = int(sum(s.bytes for s in found) * CLIP_FACTOR) + SPACE_MARGIN
    free = shutil.disk_usage(_existing(where)).free
    if free < need:
        raise Refused(
            "out",
            f"not enough free space: {size_text(free)} free at {where}, "
            f"about {size_text(need)} needed",
        )
    return final


def destination(config: Config, out_dir: Path) -> Path:
    """A bundle directory may only be made inside [export] dir or an allowed dir, judged
    after symlinks and `..` are resolved, and must not exist (evidence is never
    overwritten). Allowed dirs must exist: a missing share is an unmounted one."""
    final = Path(out_dir).expanduser().resolve()
    roots = [config.export_dir, *config.export.allowed_dirs]
    inside = [r for r in roots if final != r.resolve() and final.is_relative_to(r.resolve())]
    if not inside:
        raise Refused(
            "out",
            f"{out_dir} is not inside [export] dir or allowed_dirs ("
            + ", ".join(str(r) for r in roots)
            + ")",
        )
    if inside[0] != config.export_dir and not inside[0].is_dir():
        raise Refused("out", f"{inside[0]} does not exist (an unmounted share?)")
    if os.path.lexists(out_dir) or final.exists():
        raise Refused("out", f"{out_dir} exists already (evidence is never overwritten)")
    problem = refusal(config, Place(str(out_dir), final, Role.BUNDLE))
    if problem:  # a volume, the spool or a bundle reached through a link or mount made since
        raise Refused("out", problem)
    return final


def _existing(path: Path) -> Path:
    """The nearest ancestor that exists (a bundle's parents are made when it runs)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
