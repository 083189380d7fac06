"""What a bundle's manifest says: its footage camera by camera, who asked and why, where and
when it was made, and the signer. Written by `bundle.build`, read back by `verify`.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccvault import __version__
from ccvault.catalog.rows import Segment
from ccvault.config.places import SIGNATURE
from ccvault.evidence.signing import ALGORITHM, SigningKey
from ccvault.storage import clips
from ccvault.timefmt import utc_text

# 2: SHA256SUMS, its signature, signer.pem and README.txt for receivers without ccvault, and
# each segment's origin. Bundles of format 1 (without them) still verify.
FORMAT = "ccvault-evidence/2"
# 3: a visit's bundle (`evidence.visit`): format 2 with several cameras — each file names its
# camera, each camera's clip is clip-<camera>.mp4, the originals are segments/<camera>-<file>
# — and the visit and its room's door events in the manifest. A camera export stays format 2.
VISIT_FORMAT = "ccvault-evidence/3"
FORMATS = ("ccvault-evidence/1", FORMAT, VISIT_FORMAT)
SEGMENTS, CLIP = "segments", "clip.mp4"


@dataclass(frozen=True)
class BundleSpec:
    export_id: int
    camera: str
    from_ms: int
    to_ms: int
    reason: str
    actor: str
    final_dir: Path
    timezone: str
    catalog_id: str
    missing: tuple[Segment, ...] = ()  # catalogued in the range, but the file is lost
    visit: dict[str, Any] | None = None  # a visit's export (`evidence.visit.visit_json`)
    access_events: list[dict[str, Any]] | None = None  # its room's door events in the range


@dataclass(frozen=True)
class Track:
    """One camera's footage in a bundle: its segments with their files, and the lost ones."""

    camera: str
    segments: list[tuple[Segment, Path]]
    missing: tuple[Segment, ...] = ()


def clip_name(camera: str) -> str:
    """A camera's joined clip in a visit's bundle (format 3)."""
    return f"clip-{camera}.mp4"


def camera_manifest(
    spec: BundleSpec,
    segments: list[Segment],
    clip: clips.ClipRange,
    files: list[dict[str, Any]],
    key: SigningKey,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "export_id": spec.export_id,
        "camera": spec.camera,
        "requested": _range(spec.from_ms, spec.to_ms),
        "actual": _range(clip.start_ms, clip.end_ms),
        **_coverage(spec, segments, spec.missing),
        **_common(spec, files, key),
    }


def visit_manifest(
    spec: BundleSpec,
    tracks: list[Track],
    ranges: list[clips.ClipRange | None],
    files: list[dict[str, Any]],
    key: SigningKey,
) -> dict[str, Any]:
    """Format 3: the visit, each camera's footage as format 2 says it, the door events."""
    cameras = []
    for track, clip in zip(tracks, ranges, strict=True):
        segments = [s for s, _ in track.segments]
        cameras.append(
            {
                "camera": track.camera,
                "clip": clip_name(track.camera) if clip else None,
                "actual": _range(clip.start_ms, clip.end_ms) if clip else None,
                **_coverage(spec, segments, track.missing),
            }
        )
    return {
        "format": VISIT_FORMAT,
        "export_id": spec.export_id,
        "visit": spec.visit,
        "requested": _range(spec.from_ms, spec.to_ms),
        "cameras": cameras,
        "access_events": spec.access_events or [],
        **_common(spec, files, key),
    }


def _coverage(
    spec: BundleSpec, segments: list[Segment], missing: tuple[Segment, ...]
) -> dict[str, Any]:
    """Where one camera's footage is, where it is not, and what was lost."""
    return {
        "footage": _range(segments[0].start_ms, segments[-1].end_ms) if segments else None,
        "gaps": [_range(a, b) for a, b in gaps(segments, spec.from_ms, spec.to_ms)],
        "missing_segments": [
            {"segment_id": m.id, "sha256": m.sha256, **_range(m.start_ms, m.end_ms)}
            for m in missing
        ],
    }


def _common(spec: BundleSpec, files: list[dict[str, Any]], key: SigningKey) -> dict[str, Any]:
    """What every manifest says after its footage: files, who, why, where, when, signer."""
    return {
        "timezone": spec.timezone,
        "files": files,
        "operator": spec.actor,
        "reason": spec.reason,
        "created": utc_text(_now_ms()),
        "host": socket.gethostname(),
        "ccvault_version": __version__,
        "catalog_id": spec.catalog_id,
        "clock": clock_sync(),
        "signature": {
            "file": SIGNATURE,
            "algorithm": ALGORITHM,
            "public_key": key.public_b64,
            "public_key_sha256": key.fingerprint,
            "public_key_pem": key.public_pem(),
        },
    }


def _range(from_ms: int, to_ms: int) -> dict[str, Any]:
    return {"from": utc_text(from_ms), "to": utc_text(to_ms), "from_ms": from_ms, "to_ms": to_ms}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def gaps(segments: list[Segment], from_ms: int, to_ms: int) -> list[tuple[int, int]]:
    """Parts of [from_ms, to_ms) no segment covers (the camera was offline): the clip closes
    them up, so the manifest must say where they were. Gaps under a second are jitter."""
    out, cursor = [], from_ms
    for seg in segments:
        if seg.start_ms - cursor >= 1000:
            out.append((cursor, min(seg.start_ms, to_ms)))
        cursor = max(cursor, seg.end_ms)
    if to_ms - cursor >= 1000:
        out.append((cursor, to_ms))
    return out


def clock_sync() -> dict[str, Any]:
    """Was the clock NTP-synchronised when the bundle was made? Never fails: "unknown"."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=3,
        )
        if out.returncode == 0 and out.stdout.strip() in ("yes", "no"):
            return {"ntp_synchronized": out.stdout.strip() == "yes", "source": "timedatectl"}
    try:
        return {"ntp_synchronized": _adjtimex_synced(), "source": "adjtimex"}
    except Exception:  # any libc surprise means "unknown", never a failed export
        return {"ntp_synchronized": "unknown", "source": None}


class _Timex(ctypes.Structure):
    # The leading fields of struct timex; the rest is room for the kernel to write into.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 512),
    ]


def _adjtimex_synced() -> bool:
    """adjtimex(2) with modes 0 only reads: TIME_ERROR (5) or STA_UNSYNC means not synced."""
    timex = _Timex()
    state = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.byref(timex))
    if state < 0:
        raise OSError(ctypes.get_errno(), "adjtimex")
    return state != 5 and not timex.status & 0x0040
