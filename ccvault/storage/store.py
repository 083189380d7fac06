"""Placing a finished segment file on a volume and cataloguing it — the segment's birth.

Order (each step durable before the next), so a crash anywhere leaves either a spool file that
the next scan ingests again, or a placed file that the same scan recognises as its own:
1. fsync the source file (ffmpeg does not);
2. hard-link it to `<volume>/<camera>/YYYY/MM/DD/HH/<start_ms>_<duration_ms>.mp4` — a link
   never replaces an existing file (another filesystem: exclusive-create copy, fsync, re-hash);
3. fsync the target directory;
4. commit the catalog row;
5. remove the source.
Nothing is half-stored: the catalog is checked to be the one opened before a file is placed,
and a file placed for a row that then does not commit is removed again (the spool keeps it).
A row whose COMMIT met a lost connection may have committed or not (`CommitUnknown`): its file
stays placed and the spool copy stays too, so either way the retry finds the same bytes at the
same name and the natural key (camera, start, SHA-256) keeps it from being catalogued twice.
Each step boundary calls the injected `checkpoint(step)` (the fault tests kill there).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Protocol

import structlog

from ccvault.catalog import queries
from ccvault.catalog.rows import MediaInfo, NewSegment
from ccvault.catalog.writer import CatalogWriter, CommitUnknown
from ccvault.errors import CcvaultError
from ccvault.host.clock import Clock
from ccvault.host.durable import fsync_dir, fsync_file, make_dirs
from ccvault.storage.media import copy_hashed, sha256_file
from ccvault.storage.volumes import QUARANTINE_DIR, Volume, target_for_new_segments

log = structlog.get_logger("ccvault.storage.store")


class StoreCounters(Protocol):
    """What the store reports as it catalogues a segment (the daemon's Prometheus metrics)."""

    def segment_written(self, camera: str, nbytes: int) -> None: ...


class NoVolume(CcvaultError):
    """No volume can take footage now; the file stays where it is and is retried later."""


@dataclass(frozen=True, slots=True)
class Stored:
    outcome: str  # ingested | duplicate | quarantined
    path: Path
    camera: str | None
    segment_id: int | None = None
    reason: str = ""


class Placed(Enum):
    NEW = "new"  # this call linked or copied the bytes there
    SAME = "same"  # the very bytes were there already (an interrupted earlier attempt)
    TAKEN = "taken"  # other bytes hold that name: choose another, never replace


def segment_relpath(camera: str, start_ms: int, duration_ms: int, attempt: int = 0) -> str:
    moment = datetime.fromtimestamp(start_ms / 1000, UTC)
    suffix = f"-{attempt}" if attempt else ""
    return f"{camera}/{moment:%Y/%m/%d/%H}/{start_ms}_{duration_ms}{suffix}.mp4"


class SegmentStore:
    def __init__(
        self,
        writer: CatalogWriter,
        volumes: Callable[[], list[Volume]],
        clock: Clock,
        metrics: StoreCounters | None = None,
        on_stored: Callable[[str], None] = lambda _camera: None,
        checkpoint: Callable[[str], None] = lambda _step: None,
    ) -> None:
        self.writer = writer
        self.volumes = volumes
        self.clock = clock
        self.metrics = metrics  # counts each segment catalogued (not duplicates)
        self.on_stored = on_stored  # a camera's segment is in the catalog (its recorder's news)
        self.write_errors: dict[str, str] = {}  # volume -> why the last write there failed
        self.checkpoint = checkpoint  # called at each step boundary of `add` (fault tests)

    def _target(self) -> Volume:
        volume = target_for_new_segments(self.volumes())
        if volume is None:
            raise NoVolume("storage", "no volume is available for footage (see ccvault status)")
        return volume

    def add(
        self,
        src: Path,
        camera: str,
        start_ms: int,
        end_ms: int,
        media: MediaInfo,
        sha256: str,
        origin: str,
        analysis: int = 0,
    ) -> Stored:
        """Place src on the target volume and catalogue it; idempotent after a crash."""
        self.writer.check()  # a catalog gone: the file stays in the spool, nothing is placed
        volume = self._target()
        try:
            stored = self._add_to(
                volume, src, camera, start_ms, end_ms, media, sha256, origin, analysis
            )
        except OSError as exc:  # the volume_unavailable alert, until a write there succeeds
            self.write_errors[volume.name] = exc.strerror or str(exc)
            raise
        self.write_errors.pop(volume.name, None)
        return stored

    def _add_to(
        self,
        volume: Volume,
        src: Path,
        camera: str,
        start_ms: int,
        end_ms: int,
        media: MediaInfo,
        sha256: str,
        origin: str,
        analysis: int,
    ) -> Stored:
        fsync_file(src)
        self.checkpoint("add.synced")
        for attempt in range(100):
            rel = segment_relpath(camera, start_ms, end_ms - start_ms, attempt)
            dst = volume.path / rel
            make_dirs(dst.parent)
            placed = self._place(src, dst, sha256)
            if placed is Placed.TAKEN:
                continue  # another file holds that name: try the next name, never replace
            self.checkpoint("add.linked")
            fsync_dir(dst.parent)
            self.checkpoint("add.dir_synced")
            seg = NewSegment(
                camera,
                volume.name,
                start_ms,
                end_ms,
                rel,
                dst.stat().st_size,
                sha256,
                media,
                origin,
                analysis,
            )
            with _undone_unless_committed(dst, placed):
                seg_id = self.writer.segments.add(seg, self.clock.wall_ms())
            self.checkpoint("add.committed")
            if seg_id is None and not self._already_stored(seg, dst, placed):
                continue  # the name is another footage's row (its file missing): next name
            _unlink_if_other(src, dst)
            self.checkpoint("add.source_removed")
            if seg_id is None:
                return Stored("duplicate", dst, camera, reason="already catalogued")
            log.info(
                "segment.ingested",
                camera=camera,
                segment_id=seg_id,
                volume=volume.name,
                start_ms=start_ms,
                duration_ms=end_ms - start_ms,
                bytes=seg.bytes,
                origin=origin,
            )
            if self.metrics is not None:
                self.metrics.segment_written(camera, seg.bytes)
            self.on_stored(camera)
            return Stored("ingested", dst, camera, seg_id)
        raise RuntimeError(f"no free file name for {camera} at {start_ms}")

    def _already_stored(self, seg: NewSegment, dst: Path, placed: Placed) -> bool:
        """The row was not added. True when this very footage is catalogued (a file this call
        placed at another name than the row's — a retry after an unknown commit went
        elsewhere — is removed again); False when the name is only another footage's row."""
        with self.writer.reader() as conn:
            twin = queries.same_footage(conn, seg.camera, seg.start_ms, seg.sha256)
        where = (twin.volume, twin.path) if twin is not None else None
        if where != (seg.volume, seg.path) and placed is Placed.NEW:
            dst.unlink(missing_ok=True)
            fsync_dir(dst.parent)
            log.warning("segment.second_copy_dropped", camera=seg.camera, path=seg.path)
        return where is not None

    @staticmethod
    def _place(src: Path, dst: Path, sha256: str) -> Placed:
        """Put src's bytes at dst without replacing anything."""
        try:
            os.link(src, dst)
            return Placed.NEW
        except FileExistsError:
            same = _same_file(src, dst) or sha256_file(dst) == sha256
            return Placed.SAME if same else Placed.TAKEN
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
                raise
        try:
            copied = copy_hashed(src, dst)
        except FileExistsError:
            return Placed.SAME if sha256_file(dst) == sha256 else Placed.TAKEN
        if copied != sha256:
            dst.unlink()
            raise OSError(errno.EIO, f"copy of {src} to {dst} does not match its hash")
        return Placed.NEW

    def quarantine(
        self, src: Path, camera: str | None, reason: str, volume: Volume | None = None
    ) -> Stored:
        """Keep a file we cannot stand behind out of the store, with the reason, never delete.

        A file already on a volume stays on that volume (a rename, not a copy)."""
        self.writer.check()
        volume = volume or self._target()
        qdir = volume.path / QUARANTINE_DIR / (camera or "unknown")
        make_dirs(qdir)
        base = f"{self.clock.wall_ms()}_{src.name}"
        for attempt in range(100):
            dst = qdir / (f"{attempt}_{base}" if attempt else base)
            try:
                os.link(src, dst)
            except FileExistsError:
                continue
            except OSError:
                try:
                    copy_hashed(src, dst)  # another filesystem: durable before src goes
                except FileExistsError:
                    continue
            break
        else:
            raise RuntimeError(f"no free quarantine name for {src.name}")
        fsync_dir(qdir)
        size = dst.stat().st_size
        rel = str(dst.relative_to(volume.path))
        with _undone_unless_committed(dst, Placed.NEW):
            self.writer.segments.quarantine(
                volume.name, rel, camera, reason, size, self.clock.wall_ms()
            )
        _unlink_if_other(src, dst)
        log.warning(
            "segment.quarantined",
            camera=camera,
            file=src.name,
            reason=reason,
            volume=volume.name,
            path=rel,
        )
        return Stored("quarantined", dst, camera, reason=reason)


@contextlib.contextmanager
def _undone_unless_committed(dst: Path, placed: Placed) -> Iterator[None]:
    """A file this call placed for a row that does not commit (the catalog refused it, or is
    gone) is removed again: the source stays where it was, to be stored later. One whose
    commit's outcome is unknown stays: the row may point at it."""
    try:
        yield
    except CommitUnknown:
        log.warning("segment.commit_unknown", path=str(dst))
        raise
    except BaseException:
        if placed is Placed.NEW:
            dst.unlink(missing_ok=True)
            fsync_dir(dst.parent)
            log.warning("segment.placement_undone", path=str(dst))
        raise


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _unlink_if_other(src: Path, dst: Path) -> None:
    """Remove src unless it is dst's very name. Compared by directory identity, so a path
    through a symlink is still the same name, and only when the names match: a spool name
    never does, and two `resolve()`s were ~20 lstat calls a segment."""
    same = src.name == dst.name and _same_file(src.parent, dst.parent)
    if not same:
        src.unlink(missing_ok=True)
