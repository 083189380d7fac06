"""An evidence bundle: the original segment files, one joined clip, a manifest, its signature.

A bundle must prove itself without ccvault's catalog: the manifest lists every file with its
size and SHA-256 (the originals' equal to the catalog's at export time), and `manifest.sig`
is an Ed25519 signature over the manifest's exact bytes, with the public key in the manifest.
For a receiver without ccvault it also holds `SHA256SUMS` (every file, the manifest included),
its signature and the signer's key as PEM, and a README saying how to check them with
`sha256sum` and OpenSSL (`evidence.receiver`). It is written into a hidden directory beside
its final name, every file and directory fsynced, then renamed into place without replacing
anything, so a crash never leaves a half bundle under the final name and evidence is never
overwritten.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccvault import __version__
from ccvault.catalog.rows import Segment
from ccvault.config.places import MANIFEST, SIGNATURE
from ccvault.errors import CheckFailed, Refused
from ccvault.evidence import receiver
from ccvault.evidence.signing import ALGORITHM, SigningKey
from ccvault.host.durable import fsync_dir, fsync_file
from ccvault.storage import clips
from ccvault.storage.media import copy_hashed, sha256_file
from ccvault.timefmt import utc_text

# 2: SHA256SUMS, its signature, signer.pem and README.txt for receivers without ccvault, and
# each segment's origin. Bundles of format 1 (without them) still verify.
FORMAT = "ccvault-evidence/2"
FORMATS = ("ccvault-evidence/1", FORMAT)
SEGMENTS, CLIP = "segments", "clip.mp4"
CLIP_SHARE = 0.45  # of a job's progress: the segment copies are the rest
COPY_WORKERS = 2


class Cancelled(Exception):
    """The daemon is stopping: the job stays running in the catalog and is redone at start."""


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


@dataclass(frozen=True)
class Bundle:
    dir: Path
    manifest_sha256: str
    files: list[dict[str, Any]]
    actual_from_ms: int
    actual_to_ms: int


def partial_dir(final: Path) -> Path:
    """Where a bundle is built: hidden, beside its final name, on the same filesystem."""
    return final.with_name(f".{final.name}.partial")


def build(
    spec: BundleSpec,
    segments: list[tuple[Segment, Path]],
    key: SigningKey,
    ffmpeg: str,
    progress: Callable[[float], None],
    cancelled: Callable[[], bool],
) -> Bundle:
    """Copy, join, describe and sign; the bundle appears under its final name complete or not
    at all. A copy whose hash differs from the catalog's fails the export (CheckFailed)."""
    tmp = partial_dir(spec.final_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / SEGMENTS).mkdir(parents=True, mode=0o750)
        return _build(spec, segments, key, ffmpeg, progress, cancelled, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build(
    spec: BundleSpec,
    segments: list[tuple[Segment, Path]],
    key: SigningKey,
    ffmpeg: str,
    progress: Callable[[float], None],
    cancelled: Callable[[], bool],
    tmp: Path,
) -> Bundle:
    files, copies = _copy_segments(segments, tmp, progress, cancelled)
    if cancelled():
        raise Cancelled()
    total = sum(f["bytes"] for f in files)
    clip_range = clips.join(
        ffmpeg, copies, spec.from_ms, spec.to_ms, tmp / CLIP, timeout_s=max(600.0, total / 10e6)
    )
    clip_sha = _fsync_and_hash(tmp / CLIP)
    files.append(
        {
            "name": CLIP,
            "bytes": (tmp / CLIP).stat().st_size,
            "sha256": clip_sha,
            "start": utc_text(clip_range.start_ms),
            "end": utc_text(clip_range.end_ms),
        }
    )
    progress(0.99)
    manifest = _manifest(spec, [s for s, _ in segments], clip_range, files, key)
    body = json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"
    _write_new(tmp / MANIFEST, body)
    _write_new(tmp / SIGNATURE, key.sign(body))
    _write_for_receivers(tmp, spec, clip_range, files, body, key)
    fsync_dir(tmp)
    rename_noreplace(tmp, spec.final_dir)
    fsync_dir(spec.final_dir.parent)
    return Bundle(
        spec.final_dir,
        sha256_file(spec.final_dir / MANIFEST),
        files,
        clip_range.start_ms,
        clip_range.end_ms,
    )


def _copy_segments(
    segments: list[tuple[Segment, Path]],
    tmp: Path,
    progress: Callable[[float], None],
    cancelled: Callable[[], bool],
) -> tuple[list[dict[str, Any]], list[tuple[Segment, Path]]]:
    """The originals, each copied, fsynced and re-hashed from the copy (`copy_hashed`), the
    hash held against the catalog's. Two at a time: one file's fsync wait overlaps the next
    one's copy (bench/export.py)."""
    total = sum(seg.bytes for seg, _ in segments) or 1
    copies: list[tuple[Segment, Path]] = []
    for seg, _ in segments:
        copies.append((seg, tmp / SEGMENTS / _unique(Path(seg.path).name, seg.id, copies)))
    files, done = [], 0
    pool = ThreadPoolExecutor(max_workers=COPY_WORKERS, thread_name_prefix="export-copy")
    try:
        pending = [
            pool.submit(copy_hashed, src, dst)
            for (_, src), (_, dst) in zip(segments, copies, strict=True)
        ]
        for (seg, dst), future in zip(copies, pending, strict=True):
            if cancelled():
                raise Cancelled()
            digest = future.result()
            if digest != seg.sha256:
                raise CheckFailed(
                    f"segment {seg.id}",
                    f"the copy of {seg.volume}:{seg.path} "
                    f"hashes to {digest[:16]}…, the catalog says "
                    f"{seg.sha256[:16]}… (the stored file changed: see the scrub)",
                )
            files.append(
                {
                    "name": f"{SEGMENTS}/{dst.name}",
                    "bytes": dst.stat().st_size,
                    "sha256": digest,
                    "segment_id": seg.id,
                    "start": utc_text(seg.start_ms),
                    "end": utc_text(seg.end_ms),
                    "source": f"{seg.volume}:{seg.path}",
                    # imported: its times are what the importer claimed, not the recorder's
                    "origin": seg.origin,
                }
            )
            done += seg.bytes
            progress(done / total * (1 - CLIP_SHARE))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    fsync_dir(tmp / SEGMENTS)
    return files, copies


def _write_for_receivers(
    tmp: Path,
    spec: BundleSpec,
    clip: clips.ClipRange,
    files: list[dict[str, Any]],
    manifest: bytes,
    key: SigningKey,
) -> None:
    """signer.pem, README.txt, then SHA256SUMS over every file but the signatures, signed."""
    pem = key.public_pem().encode()
    text = receiver.readme(
        spec.camera,
        spec.export_id,
        f"{utc_text(clip.start_ms)} – {utc_text(clip.end_ms)}",
        key.fingerprint,
    ).encode()
    _write_new(tmp / receiver.SIGNER, pem)
    _write_new(tmp / receiver.README, text)
    hashes = {f["name"]: f["sha256"] for f in files}
    for name, data in ((MANIFEST, manifest), (receiver.SIGNER, pem), (receiver.README, text)):
        hashes[name] = hashlib.sha256(data).hexdigest()
    sums = receiver.sums_text(hashes)
    _write_new(tmp / receiver.SUMS, sums)
    _write_new(tmp / receiver.SUMS_SIG, key.sign(sums))


def _fsync_and_hash(path: Path) -> str:
    """fsync a file ffmpeg wrote, then hash it (from the page cache: it was just written)."""
    os.chmod(path, 0o640)  # like the copies, whatever ffmpeg's umask made it
    with ThreadPoolExecutor(max_workers=1) as pool:  # the write-back overlaps the hashing
        synced = pool.submit(fsync_file, path)
        digest = sha256_file(path)
        synced.result()
    return digest


def _unique(name: str, segment_id: int, taken: list[tuple[Segment, Path]]) -> str:
    """The original file name; two segments may share one (a clock stepped back)."""
    return f"{segment_id}-{name}" if any(p.name == name for _, p in taken) else name


def _manifest(
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
        "footage": _range(segments[0].start_ms, segments[-1].end_ms),
        "gaps": [_range(a, b) for a, b in gaps(segments, spec.from_ms, spec.to_ms)],
        "missing_segments": [
            {"segment_id": m.id, "sha256": m.sha256, **_range(m.start_ms, m.end_ms)}
            for m in spec.missing
        ],
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


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def rename_noreplace(src: Path, dst: Path) -> None:
    """rename(2) silently replaces an empty directory; renameat2(RENAME_NOREPLACE) refuses
    any existing target. Where the kernel or filesystem lacks it, an existence check first."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        rc = fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise Refused("out", f"{dst} exists already (evidence is never overwritten)")
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(dst))
    if os.path.lexists(dst):
        raise Refused("out", f"{dst} exists already (evidence is never overwritten)")
    os.rename(src, dst)


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
