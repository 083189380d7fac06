"""Running one export job: the bundle built, verified and recorded — or the failure recorded
and raised. The caller holds the job's lock (see `jobs.ExportJobs.run`)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import structlog

from ccvault.catalog import queries
from ccvault.catalog.rows import Segment
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.errors import CcvaultError, CheckFailed, NotFound, Refused
from ccvault.evidence import bundle as evidence
from ccvault.evidence import visit
from ccvault.evidence.manifest import Track
from ccvault.evidence.signing import SigningKey
from ccvault.evidence.verify import verify
from ccvault.host.clock import Clock
from ccvault.host.durable import make_dirs
from ccvault.host.events import Event, emit
from ccvault.storage.objects import ObjectFile, ObjectStoreError
from ccvault.storage.peers import Remote, peer_copies
from ccvault.storage.volumes import Volume
from ccvault.timefmt import utc_text

log = structlog.get_logger("ccvault.export")

PROGRESS_EVERY_S = 0.5


def export_row(writer: CatalogWriter, export_id: int) -> Any:
    """The job's catalog row (None: no such job)."""
    with writer.reader() as conn:
        return conn.execute("SELECT * FROM exports WHERE id = ?", (export_id,)).fetchone()


class JobRunner:
    """Builds one job's bundle; the queue (`jobs.ExportJobs`) decides who runs what, when."""

    def __init__(
        self,
        config: Config,
        writer: CatalogWriter,
        volumes: Callable[[], list[Volume]],
        clock: Clock,
        ffmpeg: str,
        key: SigningKey,
        cancelled: Callable[[], bool],
        job: Callable[[int], dict[str, Any] | None],
    ) -> None:
        self.config, self.writer, self.volumes, self.clock = config, writer, volumes, clock
        self.ffmpeg, self.key, self.cancelled, self.job = ffmpeg, key, cancelled, job

    def run(self, export_id: int, progress: Callable[[float], None]) -> dict[str, Any]:
        row = export_row(self.writer, export_id)
        if row is None:
            raise NotFound(f"export {export_id}", "no such export")
        final = Path(row["dir"])
        shutil.rmtree(evidence.partial_dir(final), ignore_errors=True)  # resumed: from scratch
        if not self.writer.exports.start(export_id):
            return self.job(export_id) or {}
        actor = row["actor"]
        details = {
            "camera": row["camera"],
            "from": utc_text(row["from_ms"]),
            "to": utc_text(row["to_ms"]),
            "reason": row["reason"],
            "dir": str(final),
            "key_fingerprint": self.key.fingerprint,
            **_visit_details(row),
        }
        if os.path.lexists(final):
            return self._adopt(export_id, final, actor, details)
        try:
            bundle = self._build(row, final, progress)
        except evidence.Cancelled:
            raise  # the daemon is stopping: the row stays `running`, the next start redoes it
        except BaseException as exc:
            self._failed(row, details, exc)
        self.writer.exports.finish(
            export_id,
            True,
            None,
            actor,
            {
                **details,
                "manifest_sha256": bundle.manifest_sha256,
                "files": len(bundle.files),
                "bytes": sum(f["bytes"] for f in bundle.files),
                "actual_from": utc_text(bundle.actual_from_ms),
                "actual_to": utc_text(bundle.actual_to_ms),
            },
            self.clock.wall_ms(),
        )
        log.info("export.done", export_id=export_id, dir=str(final), files=len(bundle.files))
        return {
            **(self.job(export_id) or {}),
            "files": bundle.files,
            "actual": {
                "from": utc_text(bundle.actual_from_ms),
                "to": utc_text(bundle.actual_to_ms),
            },
        }

    def _failed(self, row: Any, details: dict[str, Any], exc: BaseException) -> NoReturn:
        """Recorded (job failed, pin released, audited), announced, then raised."""
        export_id, actor = row["id"], row["actor"]
        problem = str(exc) if isinstance(exc, CcvaultError | OSError) else repr(exc)
        self.writer.exports.finish(
            export_id, False, problem[:500], actor, details, self.clock.wall_ms()
        )
        log.error("export.failed", export_id=export_id, error=problem)
        emit(
            Event(
                "export_failed",
                f"export {export_id} of camera {row['camera']} failed: {problem[:200]}",
                {"camera": row["camera"]},
                {"export_id": str(export_id), "actor": actor},
            )
        )
        if isinstance(exc, CcvaultError | KeyboardInterrupt):
            raise exc
        raise CheckFailed(f"export {export_id}", problem) from exc

    def _build(self, row: Any, final: Path, progress: Callable[[float], None]) -> evidence.Bundle:
        visit_id, cameras = row["visit_id"], _cameras(row)
        context: dict[str, Any] = {}
        me, now_ms, tz = self.config.node.name, self.clock.wall_ms(), self.config.tz
        with self.writer.reader() as conn:
            found = {
                c: queries.segments_in_range(conn, c, row["from_ms"], row["to_ms"]) for c in cameras
            }
            # Another node's footage comes from its API (unavailable while it is down).
            remotes = {
                s.id: (s, remote)
                for segs in found.values()
                for s in segs
                if s.state == "ok" and (remote := Remote.of(conn, s, me, now_ms, tz)) is not None
            }
            if visit_id is not None:
                shown, events = visit.evidence(conn, visit_id, row["from_ms"], row["to_ms"])
                context = {"visit": shown, "access_events": events}
        if visit_id is not None:
            self._audit_events_read(row, context)
        work = self.config.state_dir / ".peer-footage" / str(row["id"])
        with peer_copies(self.config.node, work, remotes) as fetched:
            fetched.update(_archived_copies(work, found, self.volumes(), fetched))
            return self._bundle(row, final, found, fetched, context, progress)

    def _bundle(
        self,
        row: Any,
        final: Path,
        found: dict[str, list[Segment]],
        fetched: dict[int, Path],
        context: dict[str, Any],
        progress: Callable[[float], None],
    ) -> evidence.Bundle:
        visit_id = row["visit_id"]
        volumes = {v.name: v for v in self.volumes()}
        tracks = [
            Track(c, _files(segs, volumes, fetched), tuple(s for s in segs if s.state != "ok"))
            for c, segs in found.items()
        ]
        if not any(t.segments for t in tracks):
            field = "from" if visit_id is None else "visit"
            raise NotFound(field, "no footage left in that range")
        make_dirs(final.parent)  # each new directory's entry made durable
        spec = evidence.BundleSpec(
            row["id"],
            row["camera"],
            row["from_ms"],
            row["to_ms"],
            row["reason"],
            row["actor"],
            final,
            self.config.timezone,
            self.writer.catalog_id,
            tracks[0].missing,
            **context,
        )
        return evidence.build(
            spec,
            tracks,
            self.key,
            self.ffmpeg,
            self._reporter(row["id"], progress),
            self.cancelled,
        )

    def _audit_events_read(self, row: Any, context: dict[str, Any]) -> None:
        """Door events are personal data: reading them into a bundle is audited like
        `ccvault access-events` (`access.events`), naming the export and the visit."""
        self.writer.record_event(
            row["actor"],
            "access.events",
            "access",
            {
                "from_ms": row["from_ms"],
                "to_ms": row["to_ms"],
                "room": context["visit"]["room"],
                "visit": row["visit_id"],
                "export_id": row["id"],
                "results": len(context["access_events"]),
            },
            self.clock.wall_ms(),
        )

    def _adopt(
        self, export_id: int, final: Path, actor: str, details: dict[str, Any]
    ) -> dict[str, Any]:
        """The bundle is there already: a crash fell between its rename and `done`. Ours and
        intact → done; anything else → failed (never overwritten)."""
        check = verify(final, self.key.fingerprint)
        ours = check.ok and _manifest_id(final) == export_id
        error = None if ours else f"{final} exists already and is not this export's bundle"
        self.writer.exports.finish(
            export_id,
            ours,
            error,
            actor,
            {**details, "manifest_sha256": check.manifest_sha256},
            self.clock.wall_ms(),
        )
        if not ours:
            raise Refused("out", error or "")
        return self.job(export_id) or {}

    def _reporter(
        self, export_id: int, progress: Callable[[float], None]
    ) -> Callable[[float], None]:
        last = [0.0]

        def report(fraction: float) -> None:
            progress(fraction)
            if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
                last[0] = time.monotonic()
                self.writer.exports.progress(export_id, fraction)

        return report


def _cameras(row: Any) -> list[str]:
    """The cameras a job exports: a visit's room's, as recorded when it was asked for."""
    return [row["camera"]] if row["cameras"] is None else list(json.loads(row["cameras"]))


def _visit_details(row: Any) -> dict[str, Any]:
    """What a visit's export adds to its audit records."""
    if row["visit_id"] is None:
        return {}
    return {"visit": row["visit_id"], "cameras": _cameras(row)}


def _files(
    segments: list[Segment], volumes: dict[str, Volume], fetched: dict[int, Path]
) -> list[tuple[Segment, Path]]:
    """The intact segments with their files (another node's: the checked copy fetched from
    it); Refused when a volume holding one is away."""
    pairs = []
    for seg in (s for s in segments if s.state == "ok"):
        if seg.id in fetched:
            pairs.append((seg, fetched[seg.id]))
            continue
        volume = volumes.get(seg.volume)
        if volume is None or not volume.available:
            raise Refused(
                f"volume {seg.volume}", "is unavailable; its footage cannot be exported now"
            )
        pairs.append((seg, volume.path / seg.path))
    return pairs


def _archived_copies(
    work: Path, found: dict[str, list[Segment]], volumes: list[Volume], fetched: dict[int, Path]
) -> dict[int, Path]:
    """Each segment on an s3 volume read into `work` (which the caller removes after), its
    SHA-256 checked against the catalog: a bundle never holds bytes that are not the footage.
    The bundle then copies and re-hashes them like any original."""
    buckets = {v.name: v.bucket for v in volumes if v.available and v.bucket is not None}
    out = {}
    for seg in (s for segs in found.values() for s in segs):
        bucket = buckets.get(seg.volume)
        if seg.state != "ok" or bucket is None or seg.id in fetched:
            continue
        work.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = work / f"{seg.id}.s3.mp4"
        try:
            with open(path, "xb") as copy:
                digest = ObjectFile(bucket, seg.path, seg.bytes).to_file(copy)
        except ObjectStoreError as exc:
            raise CheckFailed(
                f"segment {seg.id}", f"cannot read its archived copy: {exc}"
            ) from None
        if digest != seg.sha256:
            raise CheckFailed(
                f"segment {seg.id}",
                f"its archived copy {bucket.where(seg.path)} does not match its catalogued SHA-256",
            )
        out[seg.id] = path
    return out


def _manifest_id(bundle: Path) -> int | None:
    try:
        return json.loads((bundle / evidence.MANIFEST).read_bytes()).get("export_id")
    except (OSError, ValueError, AttributeError):
        return None
