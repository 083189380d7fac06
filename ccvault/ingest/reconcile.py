"""Reconcile: make catalog and disks agree, and say what had to be done (our `check`).

Runs at start-up and as `ccvault reconcile [--dry-run]`. Finished spool files are ingested;
unknown footage on a volume is adopted (or, when it repeats a catalogued segment, set aside as
a duplicate); rows whose file is gone are marked `missing` and reported — never silently
dropped. Unavailable volumes are skipped entirely (and reported): a disk that is not mounted
must never read as "all footage gone".

Reconcile touches only what it has proven to be a ccvault segment of that volume: a regular
file (not a link) at `<camera>/YYYY/MM/DD/HH/<start>_<duration>.mp4` whose hour directory is
its start's, of a configured or catalogued camera, that probes as footage. Anything else —
another volume's root, a catalog, an export, a stray note, a file that does not probe — is
`foreign`: reported, left exactly where it is.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import structlog

from ccvault.catalog import queries
from ccvault.catalog.nodes import own_volume_names
from ccvault.catalog.rows import NewSegment
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.host.clock import Clock
from ccvault.host.lock import daemon_running
from ccvault.host.progress import SILENT, Progress, Unit
from ccvault.ingest.spool import Ingestor, read_list
from ccvault.storage.media import ProbeError, probe, sha256_file
from ccvault.storage.objects import Bucket
from ccvault.storage.store import SegmentStore, Stored, segment_relpath
from ccvault.storage.volumes import (
    IDENTITY_FILE,
    QUARANTINE_DIR,
    Volume,
    open_volumes,
    replace_volume,
)
from ccvault.timefmt import LATEST_MS

log = structlog.get_logger("ccvault.ingest.reconcile")

# <start>_<duration>.mp4, with -N when that name was taken and -k for a keyframes-only copy.
SEGMENT_NAME = re.compile(r"^(?P<start>\d{10,})_(?P<dur>\d+)(-\d+)?(-k)?(-\d+)?\.mp4$")
LAYOUT = "<camera>/YYYY/MM/DD/HH/<start>_<duration>.mp4"
# Files younger than this may be mid-ingest by a running daemon; leave them to it.
SETTLE_S = 120
KINDS = (
    "ingested",
    "adopted",
    "found",
    "duplicates",
    "quarantined",
    "missing",
    "foreign",
    "unavailable",
)


@dataclass
class ReconcileReport:
    ingested: list[dict] = field(default_factory=list)
    adopted: list[dict] = field(default_factory=list)
    found: list[dict] = field(default_factory=list)  # missing segments whose file is back
    duplicates: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    foreign: list[dict] = field(default_factory=list)  # not proven footage: left in place
    unavailable: list[dict] = field(default_factory=list)  # volumes not looked at

    @property
    def clean(self) -> bool:
        return not any(getattr(self, k) for k in KINDS if k != "ingested")

    @property
    def repaired(self) -> bool:
        """Something on a disk was found or changed (an unavailable volume is not that)."""
        return any(getattr(self, k) for k in KINDS if k not in ("ingested", "unavailable"))

    def as_json(self) -> dict[str, list[dict]]:
        return {k: getattr(self, k) for k in KINDS}


def reconcile(
    writer: CatalogWriter,
    store: SegmentStore,
    volumes: list[Volume],
    ingestor: Ingestor | None,
    *,
    dry_run: bool,
    daemon_running: bool,
    progress: Progress = SILENT,
    actor: str = "daemon",
    cameras: Iterable[str] = (),
) -> ReconcileReport:
    """`cameras`: the configured ones; with those the catalog knows, the only directories
    footage may be adopted from. `progress` counts the spool as one step, then each
    volume's catalogued files as they are checked."""
    report = ReconcileReport()
    if ingestor is not None:
        progress.expect(1, Unit.ITEMS)
        _spool(ingestor, report, dry_run)
        progress.advance(1)
    with writer.reader() as conn:
        known = queries.camera_names(conn) | set(cameras)
        others = set(queries.volume_rows(conn)) - own_volume_names(conn, writer.node)
    for volume in volumes:
        if volume.name in others:  # another node's disk: its files and rows are its own
            log.warning("reconcile.volume_skipped", volume=volume.name, reason="another node's")
            report.unavailable.append({"volume": volume.name, "reason": "another node's volume"})
            continue
        if not volume.available:
            log.warning("reconcile.volume_skipped", volume=volume.name, reason=volume.reason)
            report.unavailable.append({"volume": volume.name, "reason": volume.reason})
            continue
        _volume(
            writer, store, volume, report, known, progress, dry_run=dry_run, running=daemon_running
        )
    if not dry_run:
        counts = {k: len(v) for k, v in report.as_json().items()}
        log.info("reconcile.done", **counts)
        for item in report.foreign:
            log.warning("reconcile.foreign", **item)
        if report.repaired:
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


def _entries(volume: Volume) -> Iterator[tuple[Path, str | None]]:
    """Every entry of a volume reconcile must judge, with why it cannot be footage (None: a
    regular file to look at). Dot-names (identity, spool, work files) and the quarantine are
    ccvault's own; a link is never followed, and another volume's root never entered."""

    def walk(directory: Path, top: bool) -> Iterator[tuple[Path, str | None]]:
        with os.scandir(directory) as found:
            entries = sorted(found, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith(".") or (top and entry.name == QUARANTINE_DIR):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                yield path, "a symbolic link"
            elif entry.is_dir(follow_symlinks=False):
                if (path / IDENTITY_FILE).exists():
                    yield path, f"another volume's root (it holds {IDENTITY_FILE})"
                else:
                    yield from walk(path, False)
            elif entry.is_file(follow_symlinks=False):
                yield path, None
            else:
                yield path, "not a regular file"

    yield from walk(volume.path, True)


def _layout_problem(rel: str, cameras: set[str]) -> str | None:
    """Why a path is not where ccvault would have put a segment (None: it is)."""
    parts = PurePosixPath(rel).parts
    name = SEGMENT_NAME.match(parts[-1])
    if name is None:
        return "not a segment file name"
    if len(parts) != 6:
        return f"not where ccvault puts a segment ({LAYOUT})"
    if parts[0] not in cameras:
        return f"{parts[0]!r} is not a configured or catalogued camera"
    start_ms = int(name.group("start"))
    if start_ms > LATEST_MS:
        return "its start time is out of range"
    expected = PurePosixPath(segment_relpath(parts[0], start_ms, 0)).parent
    if PurePosixPath(rel).parent != expected:
        return f"its directory is not its start time's ({expected})"
    return None


def _volume(
    writer: CatalogWriter,
    store: SegmentStore,
    volume: Volume,
    report: ReconcileReport,
    cameras: set[str],
    progress: Progress,
    *,
    dry_run: bool,
    running: bool,
) -> None:
    with writer.reader() as conn:
        catalogued = {
            path: (seg_id, state) for seg_id, path, state in queries.volume_files(conn, volume.name)
        }
        in_flight = {path for name, path in queries.intent_paths(conn) if name == volume.name}
    if volume.bucket is not None:
        _bucket(writer, volume.bucket, volume.name, catalogued, in_flight, report, dry_run)
        return
    now = time.time()
    progress.expect(len(catalogued), Unit.ITEMS)  # a file found on disk may add one
    seen = 0
    for path, not_footage in _entries(volume):
        seen += 1
        if seen > len(catalogued):
            progress.expect(1, Unit.ITEMS)
        progress.advance(1)
        rel = str(path.relative_to(volume.path))
        if rel in in_flight or catalogued.get(rel, (0, "missing"))[1] != "missing":
            continue
        if running and now - path.lstat().st_mtime < SETTLE_S:
            continue
        if rel in catalogued and not_footage is None:
            _returned(writer, volume, path, rel, catalogued[rel][0], report, dry_run)
            continue
        problem = not_footage or _layout_problem(rel, cameras)
        if problem:
            report.foreign.append({"volume": volume.name, "path": rel, "reason": problem})
            continue
        _unknown_file(writer, store, volume, path, rel, report, dry_run)
    missing = [
        {"segment_id": seg_id, "volume": volume.name, "path": rel}
        for rel, (seg_id, state) in catalogued.items()
        if state == "ok" and not (volume.path / rel).exists()
    ]
    progress.advance(max(len(catalogued) - seen, 0))  # those not on the disk: checked too
    _missing(writer, missing, report, dry_run)


def _bucket(
    writer: CatalogWriter,
    bucket: Bucket,
    name: str,
    catalogued: dict[str, tuple[int, str]],
    in_flight: set[str],
    report: ReconcileReport,
    dry_run: bool,
) -> None:
    """An s3 volume: a catalogued object that is gone is missing; an object no row names is
    reported foreign and left alone (segments reach a bucket only by migration, whose intent
    rolls an unfinished upload back: an object without a row is not ours to adopt)."""
    present = set(bucket.names())
    for rel in sorted(present - catalogued.keys() - in_flight):
        report.foreign.append({"volume": name, "path": rel, "reason": "no segment names it"})
    missing = [
        {"segment_id": seg_id, "volume": name, "path": rel}
        for rel, (seg_id, state) in catalogued.items()
        if state == "ok" and rel not in present and rel not in in_flight
    ]
    _missing(writer, missing, report, dry_run)


def _missing(
    writer: CatalogWriter, missing: list[dict], report: ReconcileReport, dry_run: bool
) -> None:
    report.missing += missing
    if missing and not dry_run:
        writer.segments.mark_missing(m["segment_id"] for m in missing)
        for item in missing:
            log.error("segment.missing", **item)


def _returned(
    writer: CatalogWriter,
    volume: Volume,
    path: Path,
    rel: str,
    segment_id: int,
    report: ReconcileReport,
    dry_run: bool,
) -> None:
    """A missing segment's path holds a file again (a disk put back, footage copied onto a
    replacement): the same bytes are that segment, found; other bytes are foreign."""
    with writer.reader() as conn:
        [row] = queries.segments_by_ids(conn, [segment_id])
    if sha256_file(path) != row.sha256:
        reason = f"not the bytes of missing segment {segment_id}, catalogued at this path"
        report.foreign.append({"volume": volume.name, "path": rel, "reason": reason})
        return
    item = {"segment_id": segment_id, "volume": volume.name, "path": rel}
    report.found.append(item)
    if not dry_run:
        writer.segments.mark_found([segment_id])
        log.warning("segment.found", **item)


def replace_and_reconcile(
    config: Config, writer: CatalogWriter, clock: Clock, name: str, *, force: bool, actor: str
) -> tuple[int, ReconcileReport]:
    """`volume replace`: the new disk takes the volume's place (`volumes.replace_volume`:
    refused for an available volume unless forced, audited), then that volume is reconciled,
    so what the new disk holds — the old footage copied over, or the very disk when forced —
    is found or adopted again instead of orphaned. Returns (marked missing, the report)."""
    lost = replace_volume(config, writer, name, clock.wall_ms(), actor=actor, force=force)
    volumes = open_volumes(config, writer, clock.wall_ms())
    store = SegmentStore(writer, lambda: volumes, clock)
    report = reconcile(
        writer,
        store,
        [v for v in volumes if v.name == name],
        None,
        dry_run=False,
        daemon_running=daemon_running(config.lock_base, config.node.name),
        actor=actor,
        cameras=[c.name for c in config.cameras],
    )
    return lost, report


def _unknown_file(
    writer: CatalogWriter,
    store: SegmentStore,
    volume: Volume,
    path: Path,
    rel: str,
    report: ReconcileReport,
    dry_run: bool,
) -> None:
    """Adopt a file laid out as a segment, or set it aside as a duplicate; one that does not
    probe is foreign (left where it is: it is not proven to be ccvault's)."""
    camera = rel.split("/", 1)[0]
    name = SEGMENT_NAME.match(path.name)
    assert name is not None  # _layout_problem checked it
    item = {"camera": camera, "volume": volume.name, "path": rel}
    try:
        media = probe(path)
    except ProbeError as exc:
        report.foreign.append(
            {"volume": volume.name, "path": rel, "reason": f"probe failed: {exc}"}
        )
        return None
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
