"""Motion commands: analyse one file with a camera's (or the global) motion settings."""

from __future__ import annotations

from pathlib import Path

import click

from ccvault.catalog.rows import Span
from ccvault.cli import App, Exit, cli, json_option, pass_app
from ccvault.cli.output import emit_json, table
from ccvault.config.policy import MotionSettings, motion_of_file
from ccvault.errors import UsageError


def motion_settings(app: App, camera: str | None) -> MotionSettings:
    """A camera's effective settings (the whole config validated), else the global [motion]
    ones (that table alone). With no config named (no --config, no CCVAULT_CONFIG) and none
    at the default path, the defaults: a file can be checked on any machine, but a config
    someone named must exist."""
    if camera is not None:
        return app.config.motion_for(app.camera(camera))
    if not app.config_named and not app.config_path.exists():
        return MotionSettings()
    return motion_of_file(app.config_path)


def relative_span_json(span: Span) -> dict:
    return {
        "start_s": round(span.start_ms / 1000, 3),
        "end_s": round(span.end_ms / 1000, 3),
        "peak": span.peak,
        "area": span.area,
        "kind": span.kind,
    }


@cli.command("analyze")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--camera", help="Use this camera's motion settings (default: global [motion]).")
@click.option(
    "--mode",
    type=click.Choice(["auto", "keyframes", "all"]),
    help="Override the configured scan mode.",
)
@click.option(
    "--debug-video",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="OUT.mp4",
    help="Also write a video of what the detector saw (decodes every frame).",
)
@json_option
@pass_app
def analyze_cmd(
    app: App,
    file: Path,
    camera: str | None,
    mode: str | None,
    debug_video: Path | None,
    as_json: bool,
) -> Exit:
    """Motion and lighting spans in FILE, in seconds from its start."""
    from ccvault.motion.analysis import analyze, finish  # OpenCV and PyAV: only when analysing
    from ccvault.motion.source import MediaError

    settings = motion_settings(app, camera)
    if mode is not None:
        settings = settings.model_copy(update={"mode": mode})
    try:
        result = analyze(file, settings, debug_video=debug_video)
    except MediaError as exc:
        raise UsageError(str(file), str(exc)) from None
    spans = sorted(result.spans + finish(result.carry), key=lambda s: s.start_ms)
    if as_json:
        emit_json([relative_span_json(s) for s in spans])
        return Exit.WITHOUT_TEARDOWN  # run once per file: it has nothing left to release
    table(
        ["start_s", "end_s", "kind", "peak", "area"],
        [
            [f"{s.start_ms / 1000:.3f}", f"{s.end_ms / 1000:.3f}", s.kind, s.peak, s.area]
            for s in spans
        ],
    )
    click.echo(
        f"{len(spans)} spans; mode {result.mode}, {result.frames_decoded} frames decoded "
        f"({result.keyframes} keyframes)",
        err=True,
    )
    return Exit.WITHOUT_TEARDOWN
