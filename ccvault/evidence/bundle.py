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

import ctypes
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccvault.catalog.rows import Segment
from ccvault.config.places import MANIFEST, SIGNATURE
from ccvault.errors import CheckFailed, Refused
from ccvault.evidence import receiver
from ccvault.evidence.manifest import (
    CLIP,
    SEGMENTS,
    BundleSpec,
    Track,
    camera_manifest,
    clip_name,
    visit_manifest,
)
from ccvault.evidence.signing import SigningKey
from ccvault.host.durable import fsync_dir, fsync_file
from ccvault.storage import clips
from ccvault.storage.media import copy_hashed, sha256_file
from ccvault.timefmt import utc_text

CLIP_SHARE = 0.45  # of a job's progress: the segment copies are the rest
COPY_WORKERS = 2


class Cancelled(Exception):
    """The daemon is stopping: the job stays running in the catalog and is redone at start."""


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
    tracks: list[Track],
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
        return _build(spec, tracks, key, ffmpeg, progress, cancelled, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build(
    spec: BundleSpec,
    tracks: list[Track],
    key: SigningKey,
    ffmpeg: str,
    progress: Callable[[float], None],
    cancelled: Callable[[], bool],
    tmp: Path,
) -> Bundle:
    files: list[dict[str, Any]] = []
    ranges: list[clips.ClipRange | None] = []
    for i, track in enumerate(tracks):
        part = _part(progress, i, len(tracks))
        track_files, clip_range = _footage(spec, track, tmp, ffmpeg, part, cancelled, files)
        files += track_files
        ranges.append(clip_range)
    joined = [r for r in ranges if r is not None]
    clip_range = clips.ClipRange(min(r.start_ms for r in joined), max(r.end_ms for r in joined))
    progress(0.99)
    if spec.visit is None:
        segments = [s for s, _ in tracks[0].segments]
        manifest = camera_manifest(spec, segments, clip_range, files, key)
    else:
        manifest = visit_manifest(spec, tracks, ranges, files, key)
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


def _part(progress: Callable[[float], None], index: int, count: int) -> Callable[[float], None]:
    """Progress of one camera of `count`, as a share of the whole bundle's."""
    return lambda fraction: progress((index + fraction) / count)


def _footage(
    spec: BundleSpec,
    track: Track,
    tmp: Path,
    ffmpeg: str,
    progress: Callable[[float], None],
    cancelled: Callable[[], bool],
    taken: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], clips.ClipRange | None]:
    """One camera's originals and its joined clip (none: no footage of it in the range)."""
    visit = spec.visit is not None
    prefix = f"{track.camera}-" if visit else ""
    files, copies = _copy_segments(track.segments, tmp, prefix, progress, cancelled, taken)
    if cancelled():
        raise Cancelled()
    if not copies:
        return files, None
    name = clip_name(track.camera) if visit else CLIP
    total = sum(f["bytes"] for f in files)
    clip_range = clips.join(
        ffmpeg, copies, spec.from_ms, spec.to_ms, tmp / name, timeout_s=max(600.0, total / 10e6)
    )
    clip_sha = _fsync_and_hash(tmp / name)
    files.append(
        {
            "name": name,
            "bytes": (tmp / name).stat().st_size,
            "sha256": clip_sha,
            "start": utc_text(clip_range.start_ms),
            "end": utc_text(clip_range.end_ms),
        }
    )
    if visit:
        for entry in files:
            entry["camera"] = track.camera
    return files, clip_range


def _copy_segments(
    segments: list[tuple[Segment, Path]],
    tmp: Path,
    prefix: str,
    progress: Callable[[float], None],
    cancelled: Callable[[], bool],
    taken: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[tuple[Segment, Path]]]:
    """The originals, each copied, fsynced and re-hashed from the copy (`copy_hashed`), the
    hash held against the catalog's. Two at a time: one file's fsync wait overlaps the next
    one's copy (bench/export.py). Names stay unique across `taken` (files already listed)."""
    total = sum(seg.bytes for seg, _ in segments) or 1
    names = {f["name"] for f in taken}
    copies: list[tuple[Segment, Path]] = []
    for seg, _ in segments:
        name = _unique(prefix + Path(seg.path).name, seg.id, names)
        names.add(f"{SEGMENTS}/{name}")
        copies.append((seg, tmp / SEGMENTS / name))
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
        None if spec.visit is None else spec.visit["id"],
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


def _unique(name: str, segment_id: int, taken: set[str]) -> str:
    """The original file name; two segments may share one (a clock stepped back)."""
    return f"{segment_id}-{name}" if f"{SEGMENTS}/{name}" in taken else name


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
