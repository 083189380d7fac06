"""Importing footage recorded elsewhere (a camera's SD card, another recorder's export).

Files are cut into segments at keyframes by stream copy — never re-encoded — and stored exactly
like recorded footage (same layout, rows and hashes), then analysed for motion here, in order,
before the command returns (the daemon leaves segments an import analyses alone). Several
files follow each other from the given start. The whole import is planned and checked before
anything is written: footage that overlaps the camera's catalogued footage is refused unless
forced, and a file imported before at the same start is a no-op.

Imported times are claims, not what a recorder saw, so imports are accountable: footage a
camera could not have recorded — reaching past now, or from before its `installed` time — is
refused unless someone says why the claim is right (`check_times`), and each file is audited
before any of it is stored (`import.file`: who, camera, file, SHA-256, the claimed range, any
override) and when it is (`import.stored`, in the transaction of its `imports` row).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import structlog

from ccvault.catalog import queries
from ccvault.catalog.rows import AnalysisState
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import CameraConfig
from ccvault.config.policy import MotionSettings
from ccvault.errors import CcvaultError, Refused, UsageError
from ccvault.host.lock import import_running
from ccvault.host.progress import SILENT, Progress, Unit
from ccvault.ingest.spool import read_list, segment_times
from ccvault.motion.scheduler import analyse_in_order
from ccvault.recorder.ffmpeg import FRAGMENTED_MP4, MP4_AUDIO
from ccvault.storage.media import ProbeError, probe, sha256_file
from ccvault.storage.store import SegmentStore, Stored
from ccvault.storage.volumes import local_roots
from ccvault.timefmt import duration_text, local_text, utc_text

log = structlog.get_logger("ccvault.import")


@dataclass(frozen=True, slots=True)
class PlannedFile:
    path: Path
    sha256: str
    start_ms: int
    duration_ms: int
    already_imported: bool


@dataclass
class ImportReport:
    camera: str
    files: list[dict] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"camera": self.camera, "files": self.files, "segment_ids": self.segments}


def plan(
    writer: CatalogWriter, camera: str, start_ms: int, files: list[Path], force: bool
) -> list[PlannedFile]:
    """Check every file before writing anything; raise Refused on overlap unless forced."""
    planned, cursor = [], start_ms
    with writer.reader() as conn:
        for path in files:
            try:
                media = probe(path)
            except ProbeError as exc:
                raise UsageError(str(path), f"not importable footage: {exc}") from None
            sha256 = sha256_file(path)
            done = queries.already_imported(conn, camera, sha256, cursor)
            if not done and not force:
                clash = queries.segments_in_range(conn, camera, cursor, cursor + media.duration_ms)
                if clash:
                    raise Refused(
                        f"import {path.name}",
                        f"overlaps {len(clash)} stored segment(s) of {camera} from "
                        f"{utc_text(clash[0].start_ms)} (use --force to import anyway)",
                    )
            planned.append(PlannedFile(path, sha256, cursor, media.duration_ms, done))
            cursor += media.duration_ms
    return planned


@dataclass(frozen=True, slots=True)
class TimeOverride:
    """Claimed times the camera could not have recorded, imported anyway: why (audited)."""

    problem: str
    reason: str


def check_times(
    camera: str,
    start_ms: int,
    end_ms: int,
    installed_ms: int | None,
    now_ms: int,
    tz: ZoneInfo,
    allow_reason: str | None,
) -> TimeOverride | None:
    """Refuse footage claiming times its camera cannot have recorded — ending after now, or
    starting before the camera was installed — unless `allow_reason` says why the claim is
    right; then the override, to be audited with each file."""
    if allow_reason is not None and not allow_reason.strip():
        raise UsageError("--allow-time", "must say why the footage's times are right")
    if end_ms > now_ms:
        problem = (
            f"the footage would end at {local_text(end_ms, tz)}, "
            f"{duration_text(end_ms - now_ms)} in the future"
        )
    elif installed_ms is not None and start_ms < installed_ms:
        problem = (
            f"the footage would start at {local_text(start_ms, tz)}, before the camera was "
            f"installed ({local_text(installed_ms, tz)})"
        )
    else:
        return None
    if allow_reason is None:
        raise Refused(
            f"import to {camera}",
            f"{problem}; if those times are right, import with --allow-time REASON (audited)",
        )
    return TimeOverride(problem, allow_reason.strip())


@dataclass(frozen=True)
class Importer:
    """Where and how one camera's footage is imported, for one run of `ccvault import`."""

    writer: CatalogWriter
    store: SegmentStore
    camera: CameraConfig
    motion: MotionSettings
    ffmpeg: str
    segment_seconds: int
    work_dir: Path  # the spool: the split files are linked from there into the store
    actor: str
    override: TimeOverride | None = None

    def run(self, planned: list[PlannedFile], progress: Progress = SILENT) -> ImportReport:
        """Store every planned file, then analyse the new footage for motion before
        returning; `progress` counts footage time, stored then analysed. The import lock is
        held throughout: a daemon starting meanwhile leaves these segments to this process
        (`motion.scheduler.reset_interrupted`)."""
        with import_running(self.writer.lock_base):
            report = ImportReport(self.camera.name)
            progress.expect(sum(p.duration_ms for p in planned), Unit.FOOTAGE_MS)
            for item in planned:
                self._store_file(item, report, progress.advance)
            if self.motion.enabled and report.segments:
                with self.writer.reader() as conn:
                    segments = queries.segments_by_ids(conn, report.segments)
                paths = local_roots(self.store.volumes())
                progress.expect(sum(s.end_ms - s.start_ms for s in segments), Unit.FOOTAGE_MS)
                analyse_in_order(self.writer, self.motion, segments, paths, progress.advance)
            return report

    def _store_file(
        self, item: PlannedFile, report: ImportReport, progress: Callable[[int], None]
    ) -> None:
        entry = {"file": item.path.name, "sha256": item.sha256, "start": utc_text(item.start_ms)}
        if item.already_imported:
            report.files.append({**entry, "status": "already imported"})
            progress(item.duration_ms)
            return
        self._audit_attempt(item)
        stored = self._split_and_store(item, progress)
        ids = [s.segment_id for s in stored if s.segment_id is not None]
        report.segments += ids
        self.writer.segments.record_import(
            self.camera.name,
            item.path.name,
            item.sha256,
            item.start_ms,
            item.start_ms + item.duration_ms,
            ids,
            self.actor,
            self.store.clock.wall_ms(),
        )
        report.files.append({**entry, "status": "imported", "segments": len(ids)})
        log.info(
            "import.file_done",
            camera=self.camera.name,
            file=item.path.name,
            segments=len(ids),
            actor=self.actor,
        )

    def _audit_attempt(self, item: PlannedFile) -> None:
        """Before anything of the file is stored: a crash midway leaves footage whose import
        is still on record."""
        details = {
            "camera": self.camera.name,
            "file": item.path.name,
            "sha256": item.sha256,
            "start": utc_text(item.start_ms),
            "end": utc_text(item.start_ms + item.duration_ms),
        }
        if self.override is not None:
            details |= {"time_problem": self.override.problem, "time_allowed": self.override.reason}
        self.writer.record_event(
            self.actor,
            "import.file",
            f"camera:{self.camera.name}",
            details,
            self.store.clock.wall_ms(),
        )

    def _split_and_store(self, item: PlannedFile, progress: Callable[[int], None]) -> list[Stored]:
        analysis = AnalysisState.BY_IMPORT if self.motion.enabled else AnalysisState.NOT_ANALYSED
        tmp = self.work_dir / f".import-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            _split(self.ffmpeg, self.camera, item.path, self.segment_seconds, tmp)
            stored = []
            for entry in read_list(tmp / "segments.csv"):
                src = tmp / entry.name
                media = probe(src)
                start, end = segment_times(entry, media.duration_ms)
                stored.append(
                    self.store.add(
                        src,
                        self.camera.name,
                        item.start_ms + start,
                        item.start_ms + end,
                        media,
                        sha256_file(src),
                        "imported",
                        analysis,
                    )
                )
                progress(media.duration_ms)
            return stored
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _split(ffmpeg: str, camera: CameraConfig, src: Path, segment_seconds: int, out: Path) -> None:
    audio = ["-an"]
    if camera.audio:
        audio = ["-map", "0:a:0?", "-c:a", "copy" if _audio_fits_mp4(src) else "aac"]
    argv = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-i",
        str(src),
        "-map",
        "0:v:0",
        "-c:v",
        "copy",
        *audio,
        "-f",
        "segment",
        "-segment_time",
        str(segment_seconds),
        "-reset_timestamps",
        "1",
        "-segment_format",
        "mp4",
        "-segment_format_options",
        FRAGMENTED_MP4,
        "-segment_list",
        str(out / "segments.csv"),
        "-segment_list_type",
        "csv",
        str(out / "%06d.mp4"),
    ]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise CcvaultError(f"import {src.name}", f"ffmpeg failed: {result.stderr.strip()[-400:]}")


def _audio_fits_mp4(src: Path) -> bool:
    with av.open(str(src)) as container:
        audio = container.streams.audio
        return not audio or audio[0].codec_context.name in MP4_AUDIO
