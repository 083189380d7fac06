"""Commands about footage: segments (find) and import."""

from __future__ import annotations

from pathlib import Path

import click

from ccvault.catalog import queries
from ccvault.catalog.rows import Segment
from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, human_bytes, stderr_is_terminal, table
from ccvault.errors import UsageError
from ccvault.importer import plan, run_import
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.store import SegmentStore
from ccvault.timefmt import duration_text, local_text, utc_text
from ccvault.volumes import open_volumes, spool_dirs


def time_range(app: App, start: str, end: str) -> tuple[int, int]:
    from_ms, to_ms = app.time(start, "--from"), app.time(end, "--to")
    if to_ms <= from_ms:
        raise UsageError("--to", "must be later than --from")
    return from_ms, to_ms


def segment_json(seg: Segment, volume_paths: dict[str, Path]) -> dict:
    base = volume_paths.get(seg.volume)
    return {
        "id": seg.id, "camera": seg.camera, "start": utc_text(seg.start_ms),
        "end": utc_text(seg.end_ms), "start_ms": seg.start_ms, "end_ms": seg.end_ms,
        "path": str(base / seg.path) if base else seg.path, "bytes": seg.bytes,
        "sha256": seg.sha256, "volume": seg.volume, "state": seg.state,
    }


@cli.command()
@click.option("--camera", required=True, help="Camera name.")
@click.option("--from", "start", required=True, metavar="T", help="Range start (inclusive).")
@click.option("--to", "end", required=True, metavar="T", help="Range end (exclusive).")
@json_option
@pass_app
def segments(app: App, camera: str, start: str, end: str, as_json: bool) -> None:
    """Segments of a camera overlapping [--from, --to), in time order."""
    app.camera(camera)
    from_ms, to_ms = time_range(app, start, end)
    with app.reader() as conn:
        found = queries.segments_in_range(conn, camera, from_ms, to_ms)
    paths = {v.name: v.path for v in app.config.storage.volumes}
    if as_json:
        emit_json([segment_json(s, paths) for s in found])
        return
    tz = app.config.tz
    table(["id", "start", "length", "size", "volume", "state"], [
        [s.id, local_text(s.start_ms, tz), duration_text(s.end_ms - s.start_ms),
         human_bytes(s.bytes), s.volume, s.state] for s in found])


@cli.command("import")
@click.option("--camera", required=True, help="A configured camera (enabled or not).")
@click.option("--start", required=True, metavar="T", help="When the first file starts.")
@click.option("--force", is_flag=True, help="Import even where footage is already stored.")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@pass_app
def import_cmd(app: App, camera: str, start: str, force: bool, files: tuple[Path, ...],
               as_json: bool) -> None:
    """Ingest footage recorded elsewhere: stream copy, cut at keyframes, indexed like live."""
    cam = app.camera(camera)
    start_ms = app.time(start, "--start")
    writer = app.writer
    planned = plan(writer, camera, start_ms, list(files), force)
    volumes = open_volumes(app.config, writer, app.clock.wall_ms())
    store = SegmentStore(writer, lambda: volumes, app.clock)
    total = sum(p.duration_ms for p in planned)
    spool = spool_dirs(app.config, volumes)[0]
    spool.mkdir(parents=True, exist_ok=True)
    args = (writer, store, cam, ffmpeg_binary(app.config), app.config.recording.segment_seconds,
            spool, planned, app.actor())
    if stderr_is_terminal() and not as_json:
        with click.progressbar(length=total, label="importing", file=click.get_text_stream(
                "stderr")) as bar:
            report = run_import(*args, progress=bar.update)
    else:
        report = run_import(*args)
    if as_json:
        emit_json(report.as_json())
        return
    for item in report.files:
        click.echo(f"{item['file']}: {item['status']} from {item['start']}"
                   + (f" ({item['segments']} segments)" if "segments" in item else ""))
