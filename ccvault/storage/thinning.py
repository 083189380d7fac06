"""Grooming old idle footage: rewriting a segment with its keyframes only, by stream copy.

Old footage nobody flagged is kept for its pictures, not its motion. Nothing is re-encoded: the
kept frames are the camera's own bytes, so grooming cannot blur evidence, and a segment costs a
demux and a mux (~50 ms of CPU for a 1080p minute), not a decode. What it saves depends on how
much the camera spends between keyframes: at 1080p15 with a keyframe every 2 s, a busy
~3 Mbit/s picture keeps 16 % of its bytes (bench/grooming.py); a still picture keeps more, 25 %
at that constant bitrate with sensor noise and 58 % at constant quality in a one-off trial.

Each kept frame keeps its timestamp and is shown until the next one, so a player shows every
picture at the moment it was taken. The catalog keeps the segment's time range; the file itself
ends one frame after its last keyframe.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ccvault.catalog.rows import MediaInfo
from ccvault.host.durable import fsync_dir, fsync_file
from ccvault.storage.media import ProbeError, probe

STDERR_LINES = 5


class ThinError(Exception):
    """Grooming did not produce a usable file; dst was not created. The message says why."""


def thin_argv(ffmpeg: str, src: Path, dst: Path) -> list[str]:
    """ffmpeg command that writes src's video keyframes to a new MP4 at dst."""
    return [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        # An MP4 header already holds what a stream copy needs; probing decodes frames to
        # guess more and doubled the cost of a 1080p segment (~100 ms → ~50 ms), for a
        # byte-identical output.
        "-nofind_stream_info",
        "-i",
        str(src),
        # Pictures only: audio and any other track are not mapped, so they are dropped.
        "-map",
        "0:v:0",
        "-c",
        "copy",
        # Drops every packet not flagged key after demuxing, whatever the demuxer supports.
        # `-discard nokey` skips them inside the demuxer instead, but mis-times the kept
        # frames of fragmented MP4 with B-frames.
        "-bsf:v",
        "noise=drop=not(key)",
        # Otherwise ffmpeg shifts the output by the input's start time whenever it knows one
        # (today only when probing): a file whose first frame is not a keyframe would show
        # its pictures early.
        "-copyts",
        # Not +faststart: the moov of a few dozen samples is tiny, and moving it still costs a
        # second pass over the file (~2 ms a segment, 4 %).
        "-f",
        "mp4",
        "-n",
        str(dst),
    ]


def work_path(dst: Path) -> Path:
    """Where ffmpeg writes before the result is linked to dst."""
    return dst.with_name(f".{dst.name}.tmp")


def keyframes_only(ffmpeg: str, src: Path, dst: Path, timeout_s: float = 120) -> MediaInfo:
    """Write src's keyframes only to the new file dst (stream copy) and return its probe.

    ffmpeg writes a hidden file beside dst (`work_path`), which is fsynced and probed, then
    hard-linked to dst: a link never replaces a file, and dst only ever appears complete and
    durable, so a crash or a failure leaves no partial dst. The hidden file's name follows
    from dst, so the executor's crash recovery removes one a crash left behind. Raises
    ThinError, with ffmpeg's last stderr lines, if dst exists or anything fails."""
    if os.path.lexists(dst):
        raise ThinError(f"{dst} already exists")
    tmp = work_path(dst)
    tmp.unlink(missing_ok=True)  # left by a crash; only this function writes such names
    try:
        try:
            result = subprocess.run(
                thin_argv(ffmpeg, src, tmp),
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise ThinError(f"thinning {src} took over {timeout_s:g} s") from None
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-STDERR_LINES:])
            raise ThinError(f"ffmpeg failed on {src} (exit {result.returncode}): {tail}")
        fsync_file(tmp)
        try:
            media = probe(tmp)
        except ProbeError as exc:
            raise ThinError(f"thinned {src} is not usable: {exc}") from None
        try:
            os.link(tmp, dst)
        except FileExistsError:
            raise ThinError(f"{dst} already exists") from None
        fsync_dir(dst.parent)
        return media
    finally:
        tmp.unlink(missing_ok=True)
