"""Commands about footage: segments and motion (find) and import."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from ccvault.catalog import queries
from ccvault.catalog.nodes import is_known_camera
from ccvault.catalog.rows import AnalysisState, Segment, StoredSpan
from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, progress_bar, table
from ccvault.config.model import CameraConfig, VolumeConfig
from ccvault.errors import CheckFailed, NotFound, Refused
from ccvault.evidence.requests import destination
from ccvault.host.durable import make_dirs
from ccvault.host.progress import Progress
from ccvault.storage.media import copy_hashed
from ccvault.storage.objects import ObjectFile, ObjectStoreError, bucket_of
from ccvault.storage.peers import Remote, fetch_verified, reasons
from ccvault.storage.volumes import open_volumes, spool_dirs
from ccvault.text import size_text
from ccvault.timefmt import duration_text, local_text, ordered
from ccvault.views.models import SegmentFile, SpanOut


def time_range(app: App, start: str, end: str) -> tuple[int, int]:
    from_ms, to_ms = app.time(start, "--from"), app.time(end, "--to")
    ordered(from_ms, to_ms, "--from", "--to")
    return from_ms, to_ms


def segment_json(seg: Segment, volume_paths: dict[str, Path]) -> dict:
    """The API's segment object plus the file's absolute path (`api.models.SegmentFile`)."""
    base = volume_paths.get(seg.volume)
    return SegmentFile.at(seg, str(base / seg.path) if base else seg.path).as_json()


def span_json(stored: StoredSpan) -> dict:
    """The API's span object (`api.models.SpanOut`)."""
    return SpanOut.of(stored).as_json()


@cli.command()
@click.option("--camera", required=True, help="Camera name.")
@click.option("--from", "start", required=True, metavar="T", help="Range start (inclusive).")
@click.option("--to", "end", required=True, metavar="T", help="Range end (exclusive).")
@click.option(
    "--motion", "activity", is_flag=True, help="Only segments whose padded range overlaps activity."
)
@json_option
@pass_app
def segments(app: App, camera: str, start: str, end: str, activity: bool, as_json: bool) -> None:
    """Segments of a camera overlapping [--from, --to), in time order; another node's camera
    too (its segments name their node; those it cannot serve now say why)."""
    from_ms, to_ms = time_range(app, start, end)
    with app.reader() as conn:
        if not is_known_camera(app.config, conn, camera):
            app.camera(camera)  # NotFound, as for any camera not in the config
        found = queries.segments_in_range(conn, camera, from_ms, to_ms, activity_only=activity)
        why = reasons(conn, app.config.node.name, app.clock.wall_ms(), app.config.tz)
    paths = {v.name: v.path for v in app.config.storage.directories if v.path}
    if as_json:
        emit_json([{**segment_json(s, paths), "unavailable": why.get(s.node or "")} for s in found])
        return
    tz = app.config.tz
    table(
        ["id", "start", "end", "length", "size", "node", "volume", "state", "origin", "motion"],
        [
            [
                s.id,
                local_text(s.start_ms, tz),
                _end_text(s.start_ms, s.end_ms, tz),
                duration_text(s.end_ms - s.start_ms),
                size_text(s.bytes),
                s.node or "",
                s.volume,
                _state_text(s, why),
                s.origin,
                _activity(s),
            ]
            for s in found
        ],
    )
    _footer(
        len(found),
        "segment",
        from_ms,
        to_ms,
        tz,
        f", {size_text(sum(s.bytes for s in found))}, "
        f"{duration_text(sum(s.end_ms - s.start_ms for s in found))} of footage",
    )


@cli.command()
@click.option("--camera", required=True, help="Camera name.")
@click.option("--from", "start", required=True, metavar="T", help="Range start (inclusive).")
@click.option("--to", "end", required=True, metavar="T", help="Range end (exclusive).")
@click.option(
    "--kind",
    type=click.Choice(["motion", "lighting", "all"]),
    default="motion",
    show_default=True,
    help="lighting: spans of lights switched on or off.",
)
@click.option(
    "--min-people",
    type=click.IntRange(min=1),
    metavar="N",
    help="Only spans where at least N people were counted on one frame.",
)
@json_option
@pass_app
def motion(
    app: App, camera: str, start: str, end: str, kind: str, min_people: int | None, as_json: bool
) -> None:
    """Motion spans of a camera overlapping [--from, --to): first to last moving frame."""
    app.camera(camera)
    from_ms, to_ms = time_range(app, start, end)
    kinds = ("motion", "lighting") if kind == "all" else (kind,)
    with app.reader() as conn:
        found = queries.spans_in_range(conn, camera, from_ms, to_ms, kinds)
    if min_people is not None:
        found = [s for s in found if (s.span.people_max or 0) >= min_people]
    if as_json:
        emit_json([span_json(s) for s in found])
        return
    tz = app.config.tz
    table(
        ["start", "end", "length", "peak", "area", "kind", "people"],
        [
            [
                local_text(s.span.start_ms, tz),
                "(ongoing)" if s.open else _end_text(s.span.start_ms, s.span.end_ms, tz),
                duration_text(s.span.end_ms - s.span.start_ms),
                f"{s.span.peak:.2f}",
                f"{s.span.area:.3f}",
                s.span.kind,
                s.span.people_max,
            ]
            for s in found
        ],
    )
    _footer(
        len(found),
        "span",
        from_ms,
        to_ms,
        tz,
        f", {duration_text(sum(s.span.end_ms - s.span.start_ms for s in found))} of activity",
    )


def _end_text(start_ms: int, end_ms: int, tz: ZoneInfo) -> str:
    """The end as a time of day when it falls on the start's local date (shorter rows)."""
    end, begin = local_text(end_ms, tz), local_text(start_ms, tz)
    return end[11:] if end[:10] == begin[:10] else end


def _state_text(seg: Segment, why: dict[str, str]) -> str:
    """ok, missing, corrupt — or `unavailable (node b down since …)`: not a gap."""
    if seg.node in why:
        return f"unavailable ({why[seg.node]})"
    return "corrupt" if seg.state == "ok" and seg.integrity == "corrupt" else seg.state


def _activity(seg: Segment) -> str:
    if seg.analysis == AnalysisState.WAITING:
        return "pending"
    if seg.analysis == AnalysisState.NOT_ANALYSED:
        return "-"
    return "yes" if seg.activity else "no"


def _footer(count: int, noun: str, from_ms: int, to_ms: int, tz: ZoneInfo, more: str) -> None:
    """One summary line after the table, on stderr: stdout keeps only the table's rows."""
    what = f"{count} {noun}{'' if count == 1 else 's'}"
    click.echo(
        f"{what}{more if count else ''} between {local_text(from_ms, tz)} and "
        f"{local_text(to_ms, tz)}",
        err=True,
    )


@cli.command("import")
@click.option("--camera", required=True, help="A configured camera (enabled or not).")
@click.option("--start", required=True, metavar="T", help="When the first file starts.")
@click.option("--force", is_flag=True, help="Import even where footage is already stored.")
@click.option(
    "--hold",
    "hold_reason",
    metavar="REASON",
    help="Hold the imported range (needed for footage past the retention maximum).",
)
@click.option(
    "--allow-time",
    "allow_time",
    metavar="REASON",
    help="Import footage whose times the camera cannot have recorded (ending after now, or "
    "before its `installed` time), saying why they are right (audited).",
)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@json_option
@pass_app
def import_cmd(
    app: App,
    camera: str,
    start: str,
    force: bool,
    hold_reason: str | None,
    allow_time: str | None,
    files: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Ingest footage recorded elsewhere: stream copy, cut at keyframes, indexed like live.
    Footage ending after now or starting before the camera's `installed` time is refused
    (exit 4) unless --allow-time says why; each file is audited (who, SHA-256, claimed start)
    and its segments are marked `imported`."""
    from ccvault.ingest.importer import check_times, plan  # loads PyAV and OpenCV

    cam = app.camera(camera)
    start_ms = app.time(start, "--start")
    planned = plan(app.writer, camera, start_ms, list(files), force)
    end_ms = start_ms + sum(p.duration_ms for p in planned)
    now_ms = app.clock.wall_ms()
    installed_ms = app.config.installed_ms(cam)
    tz = app.config.tz
    override = check_times(camera, start_ms, end_ms, installed_ms, now_ms, tz, allow_time)
    _hold_if_needed(app, cam, start_ms, end_ms, hold_reason, now_ms)
    with progress_bar("importing", as_json) as bar:
        report = _run_import(app, cam, planned, override, bar)
    if as_json:
        emit_json(report.as_json())
        return
    for item in report.files:
        click.echo(
            f"{item['file']}: {item['status']} from {item['start']}"
            + (f" ({item['segments']} segments)" if "segments" in item else "")
        )


def _hold_if_needed(
    app: App, cam: CameraConfig, start_ms: int, end_ms: int, reason: str | None, now_ms: int
) -> None:
    """Footage past the camera's max_days would be purged at once: it needs a hold, added
    before anything is stored (audited like any hold)."""
    ceiling = app.config.retention_for(cam).max_days
    if reason is None and start_ms <= now_ms - ceiling * 86_400_000:
        raise Refused(
            f"import to {cam.name}",
            f"the footage starts more than max_days ({ceiling:g}) ago and would be purged at "
            "once; keep it with --hold REASON",
        )
    if reason is not None:
        from ccvault.retention import holds

        hold_id = holds.add(
            app.writer, app.config, (cam.name,), start_ms, end_ms, reason, None, app.actor(), now_ms
        )
        click.echo(f"hold {hold_id} keeps the imported range", err=True)


def _run_import(
    app: App, cam: CameraConfig, planned: list, override: Any, progress: Progress
) -> Any:
    """Store the planned files and analyse them."""
    from ccvault.ingest.importer import Importer
    from ccvault.recorder.ffmpeg import ffmpeg_binary
    from ccvault.storage.store import SegmentStore

    volumes = open_volumes(app.config, app.writer, app.clock.wall_ms())
    spool = spool_dirs(app.config, volumes).record
    spool.mkdir(parents=True, exist_ok=True)
    importer = Importer(
        app.writer,
        SegmentStore(app.writer, lambda: volumes, app.clock),
        cam,
        app.config.motion_for(cam),
        ffmpeg_binary(app.config),
        app.config.recording.segment_seconds,
        spool,
        app.actor(),
        override,
    )
    return importer.run(planned, progress=progress)


@cli.command("segment-file")
@click.argument("segment_id", type=click.IntRange(min=1))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="New file, inside [export] dir or allowed_dirs, for the segment's original bytes.",
)
@json_option
@pass_app
def segment_file(app: App, segment_id: int, out: Path, as_json: bool) -> None:
    """Copy one segment's original file — from this node's volume, or streamed from the node
    that holds it — and check its SHA-256 against the catalog (exit 1 and no file when it
    differs; exit 5 while its node cannot serve it). Footage leaves only to an allowed place,
    as an export's (exit 4 elsewhere, or when FILE exists). Audited as a view."""
    me, now_ms = app.config.node.name, app.clock.wall_ms()
    try:
        out = destination(app.config, out)
    except Refused as exc:
        raise Refused("--out", exc.problem) from None
    with app.reader() as conn:
        found = queries.segments_by_ids(conn, [segment_id])
        if not found or found[0].state != "ok":
            raise NotFound(f"segment {segment_id}", "no such segment, or its file is missing")
        seg = found[0]
        remote = Remote.of(conn, seg, me, now_ms, app.config.tz)
    try:
        if remote is None:
            cfg = next((v for v in app.config.storage.volumes if v.name == seg.volume), None)
            if cfg is None:
                raise NotFound(f"segment {segment_id}", f"volume {seg.volume} is not configured")
            make_dirs(out.parent)
            digest = _copy_out(cfg, seg, out)
            if digest != seg.sha256:
                raise CheckFailed(
                    f"segment {segment_id}",
                    f"its SHA-256 is {digest}, the catalog says {seg.sha256}",
                )
        else:
            make_dirs(out.parent)
            with open(out, "xb") as file:
                fetch_verified(app.config.node, remote, seg, file)
    except CheckFailed:
        out.unlink(missing_ok=True)
        raise
    details = {"camera": seg.camera, "node": seg.node, "sha256": seg.sha256, "out": str(out)}
    app.writer.record_event(app.actor(), "view.segment", f"segment:{seg.id}", details, now_ms)
    if as_json:
        emit_json({"segment": seg.id, "bytes": seg.bytes, **details})
        return
    click.echo(f"{out}: segment {seg.id} of {seg.camera} from node {seg.node}, SHA-256 checked")


def _copy_out(cfg: VolumeConfig, seg: Segment, out: Path) -> str:
    """Copy a segment of this node to out (never replacing a file); the copy's SHA-256. An
    archived one is read from its bucket (an unreachable store: CheckFailed, nothing left)."""
    if cfg.path is not None:
        return copy_hashed(cfg.path / seg.path, out)
    with open(out, "xb") as file:
        try:
            digest = ObjectFile(bucket_of(cfg), seg.path, seg.bytes).to_file(file)
        except ObjectStoreError as exc:
            raise CheckFailed(f"segment {seg.id}", exc.strerror or str(exc)) from None
        file.flush()
        os.fsync(file.fileno())
    return digest
