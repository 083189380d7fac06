"""One playable MP4 for a time range, joined from stored segments by stream copy.

Nothing is re-encoded, so a clip's pictures are the camera's own bytes. Cuts fall on
keyframes: the clip starts at the last keyframe at or before the requested start (so its
first picture decodes) and ends at the requested end. The actual range is returned, because
it is what the clip shows. Gaps between segments (camera offline) are closed up in the clip;
the segment list and the manifest say where they were.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import av

from ccvault.catalog.rows import Segment
from ccvault.errors import CcvaultError, NotFound


class ClipError(CcvaultError):
    """ffmpeg could not join the segments (the message has its last words)."""


@dataclass(frozen=True, slots=True)
class ClipRange:
    start_ms: int  # the first picture's time (a keyframe at or before the requested start)
    end_ms: int


def keyframe_before(path: Path, offset_ms: int) -> int:
    """Milliseconds into the file of the last video keyframe at or before offset_ms (demux
    only: no decoding)."""
    best = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or not packet.is_keyframe:
                continue
            at = int(packet.pts * packet.time_base * 1000)
            if at > offset_ms:
                break
            best = at
    return best


def join(
    ffmpeg: str,
    segments: list[tuple[Segment, Path]],
    from_ms: int,
    to_ms: int,
    out: Path,
    timeout_s: float = 600,
) -> ClipRange:
    """Write the part of [from_ms, to_ms) the segments hold to out (an MP4); segments in time
    order, each with its file."""
    inside = [(s, p) for s, p in segments if s.end_ms > from_ms and s.start_ms < to_ms]
    if not inside:
        raise NotFound("clip", "no footage in that range")
    first, first_path = inside[0]
    inpoint_ms = keyframe_before(first_path, max(from_ms - first.start_ms, 0))
    last = inside[-1][0]
    listing = out.with_name(out.name + ".concat")
    lines = ["ffconcat version 1.0"]
    for i, (seg, path) in enumerate(inside):
        lines.append(f"file '{_quote(path)}'")
        if i == 0 and inpoint_ms > 0:
            lines.append(f"inpoint {inpoint_ms / 1000:.3f}")
        if seg is last and to_ms < seg.end_ms:
            lines.append(f"outpoint {(to_ms - seg.start_ms) / 1000:.3f}")
    listing.write_text("\n".join(lines) + "\n")
    argv = [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        "-map",
        "0",
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        "-y",
        str(out),
    ]
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=timeout_s
        )
    finally:
        listing.unlink(missing_ok=True)
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise ClipError("clip", f"ffmpeg could not join the segments: {tail}")
    return ClipRange(first.start_ms + inpoint_ms, min(to_ms, last.end_ms))


def _quote(path: Path) -> str:
    return str(path).replace("'", "'\\''")
