"""Reconcile: make catalog and disks agree, and say what had to be done (our `check`).

Runs at start-up and as `ccvault reconcile [--dry-run]`. Finished spool files are ingested;
unknown footage on a volume is adopted (or, when it repeats a catalogued segment, set aside as
a duplicate); unusable files are quarantined; rows whose file is gone are marked `missing` and
reported — never silently dropped. Unavailable volumes are skipped entirely: a disk that is
not mounted must never read as "all footage gone".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from ccvault.catalog import queries
from ccvault.catalog.rows import NewSegment
from ccvault.catalog.writer import CatalogWriter
from ccvault.ingest.spool import Ingestor, read_list
from ccvault.storage.media import ProbeError, probe, sha256_file
from ccvault.storage.store import SegmentStore, Stored
from ccvault.storage.volumes import IDENTITY_FILE, QUARANTINE_DIR, Volume

log = structlog.get_logger("ccvault.ingest.reconcile")

# <start>_<duration>.mp4, with -N when that name was taken and -k for a keyframes-only copy.
SEGMENT_NAME = re.compile(r"^(?P<start>\d{10,})_(?P<dur>\d+)(-\d+)?(-k)?(-\d+)?\.mp4$")
# Files younger than this may be mid-ingest by a running daemon; leave them to it.
SETTLE_S = 120


@dataclass
class ReconcileReport:
    ingested: list[dict] = field(default_factory=list)
    adopted: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.adopted or self.duplicates or self.quarantined or self.missing)

    def as_json(self) -> dict[str, list[dict]]:
        return {
            k: getattr(self, k)
            for k in ("ingested", "adopted", "duplicates", "quarantined", "missing")
        }


def reconcile(
    writer: CatalogWriter,
    store: SegmentStore,
    volumes: list[Volume],
    ingestor: Ingestor | None,
    *,
    dry_run: bool,
    daemon_running: bool,
    progress: Callable[[str], None] = lambda _: None,
    actor: str = "daemon",
) -> ReconcileReport:
    report = ReconcileReport()
    if ingestor is not None:
        progress("spool")
        _spool(ingestor, report, dry_run)
    for volume in volumes:
        if not volume.available:
            log.warning("reconcile.volume_skipped", volume=volume.name, reason=volume.reason)
            continue
        progress(volume.name)
        _volume(writer, store, volume, report, dry_run, daemon_running)
    if not dry_run:
        counts = {k: len(v) for k, v in report.as_json().items()}
        log.info("reconcile.done", **counts)
        if not report.clean:
            writer.record_event(
                actor,
                "reconcile.repair",
                "catalog",
                {**counts, **{k: v for k, v in report.as_json().items() if k != "ingested"}},
                store.clock.wall_ms(),
            )
    return report


def _spool(ingestor: Ingestor, report: ReconcileReport, dry_run: bool) -> None:
    if dry_run:
        for run_dir in ingestor.run_dirs():
            for entry in read_list(run_dir / "segments.csv"):
                if (run_dir / entry.name).exists():
                    report.ingested.append(
                        {"camera": run_dir.parent.name, "path": f"{run_dir.name}/{entry.name}"}
                    )
        return
    for stored in ingestor.scan():
        _record(report, stored)


def _record(report: ReconcileReport, stored: Stored) -> None:
    item = {"camera": stored.camera, "path": stored.path.name, "segment_id": stored.segment_id}
    if stored.outcome == "ingested":
        report.ingested.append(item)
    elif stored.outcome == "quarantined":
        report.quarantined.append({**item, "reason": stored.reason})


def _volume_files(volume: Volume) -> Iterator[Path]:
    """Footage files on a volume: `<camera>/...`, skipping identity, quarantine and dot-dirs."""
    for top in sorted(volume.path.iterdir()):
        if top.name.startswith(".") or top.name in (QUARANTINE_DIR, IDENTITY_FILE):
            continue
        if top.is_file():
            yield top
            continue
        for path in sorted(top.rglob("*")):
            if path.is_file() and not any(p.startswith(".") for p in path.parts):
                yield path


def _volume(
    writer: CatalogWriter,
    store: SegmentStore,
    volume: Volume,
    report: ReconcileReport,
    dry_run: bool,
    daemon_running: bool,
) -> None:
    with writer.reader() as conn:
        catalogued = {
            path: (seg_id, state) for seg_id, path, state in queries.volume_files(conn, volume.name)
        }
        in_flight = {path for name, path in queries.intent_paths(conn) if name == volume.name}
    now = time.time()
    for path in _volume_files(volume):
        rel = str(path.relative_to(volume.path))
        if rel in catalogued or rel in in_flight:
            continue
        if daemon_running and now - path.stat().st_mtime < SETTLE_S:
            continue
        _unknown_file(writer, store, volume, path, rel, report, dry_run)
    missing = [
        {"segment_id": seg_id, "volume": volume.name, "path": rel}
        for rel, (seg_id, state) in catalogued.items()
        if state == "ok" and not (volume.path / rel).exists()
    ]
    report.missing += missing
    if missing and not dry_run:
        writer.segments.mark_missing(m["segment_id"] for m in missing)
        for item in missing:
            log.error("segment.missing", **item)


def _unknown_file(
    writer: CatalogWriter,
    store: SegmentStore,
    volume: Volume,
    path: Path,
    rel: str,
    report: ReconcileReport,
    dry_run: bool,
) -> None:
    """Adopt a file the catalog does not know, or set it aside with the reason."""
    camera = rel.split("/", 1)[0] if "/" in rel else None
    name = SEGMENT_NAME.match(path.name)
    item = {"camera": camera, "volume": volume.name, "path": rel}

    def quarantine(reason: str) -> None:
        report.quarantined.append({**item, "reason": reason})
        if not dry_run:
            store.quarantine(path, camera, reason, volume)

    if camera is None or name is None:
        return quarantine("not a segment file name")
    try:
        media = probe(path)
    except ProbeError as exc:
        return quarantine(f"probe failed: {exc}")
    start_ms = int(name.group("start"))
    sha256 = sha256_file(path)
    with writer.reader() as conn:
        twin = queries.same_footage(conn, camera, start_ms, sha256)
    if twin is not None:
        report.duplicates.append({**item, "segment_id": twin.id})
        if not dry_run:
            store.quarantine(path, camera, f"duplicate of segment {twin.id}", volume)
        return None
    if dry_run:
        report.adopted.append(item)
        return None
    seg = NewSegment(
        camera,
        volume.name,
        start_ms,
        start_ms + media.duration_ms,
        rel,
        path.stat().st_size,
        sha256,
        media,
        "adopted",
    )
    seg_id = writer.segments.add(seg, store.clock.wall_ms())
    if seg_id is not None:
        report.adopted.append({**item, "segment_id": seg_id})
        log.warning("segment.adopted", camera=camera, segment_id=seg_id, path=rel)
    return None
