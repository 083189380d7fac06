"""The scrub: re-hash stored segments slowly, forever, so silent corruption is found; and the
same check now, at full speed, for a selection (`check_now`, `ccvault verify`).

Paced at `[integrity] scrub_mb_per_s` so it never competes with recording for the disk. A
mismatch raises `segment_corrupt` and flags the row; the file is kept as it is (evidence is
never silently replaced or repaired). The position survives restarts (meta `scrub_cursor`).
"""

from __future__ import annotations

import hashlib
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from ccvault.catalog import db, queries
from ccvault.catalog.nodes import owned, scrub_cursor_key
from ccvault.catalog.rows import Segment
from ccvault.catalog.writer import CatalogGone, CatalogWriter
from ccvault.config.model import Config
from ccvault.host.clock import Clock
from ccvault.host.progress import SILENT, Periodic, Progress, Unit
from ccvault.storage.media import sha256_file
from ccvault.storage.objects import Bucket, ObjectStoreError
from ccvault.storage.volumes import Volume, readable_roots
from ccvault.timefmt import utc_text, utc_text_or_none

log = structlog.get_logger("ccvault.storage.integrity")

CHUNK = 1 << 20
IDLE_S = 60  # nothing to scrub: look again later
REPORT_S = 3600  # at most one scrub.progress event this often
PAGE = 500  # segments read at a time by `check_now`


def paced_sha256(path: Path, bytes_per_s: float, stop: threading.Event) -> str | None:
    """SHA-256 of a file read at most bytes_per_s; None when stopped midway."""
    digest = hashlib.sha256()
    started = time.monotonic()
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            ahead = done / bytes_per_s - (time.monotonic() - started)
            if ahead > 0 and stop.wait(ahead):
                return None
    return digest.hexdigest()


OWN_SEGMENTS = "FROM segments s JOIN volumes v ON v.id = s.volume_id"


class Scrubber:
    def __init__(
        self,
        writer: CatalogWriter,
        volumes: Callable[[], list[Volume]],
        clock: Clock,
        mb_per_s: float,
    ) -> None:
        self.writer = writer
        self.volumes = volumes
        self.clock = clock
        self.bytes_per_s = mb_per_s * 1_000_000
        self.stop_event = threading.Event()
        # One `scrub.progress` event an hour (segments, bytes, each verdict), never a line a
        # segment; a corrupt file is logged at once on its own (`segment_corrupt`).
        self.report = Periodic("scrub.progress", REPORT_S, clock.monotonic)

    def stop(self) -> None:
        self.stop_event.set()

    def apply(self, config: Config) -> None:
        self.bytes_per_s = config.integrity.scrub_mb_per_s * 1_000_000

    def run(self) -> None:
        if self.bytes_per_s <= 0:
            return
        while not self.stop_event.is_set():
            try:
                found = self.scrub_next()
            except (CatalogGone, *db.Error) as exc:  # catalog_error; try again later
                log.warning("scrub.paused", error=str(exc))
                found = False
            if not found:
                self.stop_event.wait(IDLE_S)
        self.report.flush()

    def scrub_next(self) -> bool:
        """Check the next segment after the cursor (wrapping); False when there is none."""
        key = scrub_cursor_key(self.writer.node)
        own, params = owned("v.node", self.writer.node)  # each node re-hashes its own footage
        mine = f"SELECT s.id {OWN_SEGMENTS} WHERE s.state = 'ok' AND {own}"
        with self.writer.reader() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            cursor = int(row[0]) if row else 0
            found = conn.execute(
                f"{mine} AND s.id > ? ORDER BY s.id LIMIT 1", (*params, cursor)
            ).fetchone()
            if found is None and cursor:
                found = conn.execute(f"{mine} ORDER BY s.id LIMIT 1", params).fetchone()
            if found is None:
                return False
            seg = queries.segments_by_ids(conn, [found[0]])[0]
        roots = readable_roots(self.volumes())
        verdict = judge(
            self.writer,
            seg,
            roots.get(seg.volume),
            lambda path: paced_sha256(path, self.bytes_per_s, self.stop_event),
        )
        if verdict is not None:
            self.report.count(segments=1, bytes=seg.bytes, **{verdict.value: 1})
        if verdict in (Verdict.OK, Verdict.CORRUPT):
            record(self.writer, seg, verdict, self.clock.wall_ms(), scrub=True)
        elif verdict is not None or not self.stop_event.is_set():
            # Not there, or moved meanwhile: reconcile reports real losses, and a thinned or
            # migrated segment's new file is checked on a later round.
            self.writer.segments.advance_scrub(seg.id)
        return True


def _object_digest(bucket: Bucket, rel: str) -> str:
    """An archived segment's SHA-256 read back from its bucket (FileNotFoundError: gone)."""
    try:
        return bucket.sha256(rel)[0]
    except ObjectStoreError as exc:
        if exc.code in ("NoSuchKey", "404"):
            raise FileNotFoundError(rel) from None
        raise


class Verdict(StrEnum):
    """What re-hashing one segment found."""

    OK = "ok"
    CORRUPT = "corrupt"  # the file no longer matches its SHA-256
    MISSING = "missing"  # the row names a file that is not there
    UNREADABLE = "unreadable"  # not a regular file (a link, a pipe…) or not readable: not read
    UNAVAILABLE = "unavailable"  # its volume is not there: not checked
    MOVED = "moved"  # thinned, migrated or purged while it was hashed: not checked


def judge(
    writer: CatalogWriter,
    seg: Segment,
    root: Path | Bucket | None,
    hasher: Callable[[Path], str | None],
) -> Verdict | None:
    """Re-hash a segment's file and judge it against its row as the row is *after* hashing
    (retention may have moved it meanwhile); None when the hasher stopped midway. Only a
    regular file is read: a pipe put in a segment's place would block the reader for ever."""
    if root is None:
        return Verdict.UNAVAILABLE
    try:
        digest = _object_digest(root, seg.path) if isinstance(root, Bucket) else None
        if isinstance(root, Path):
            path = root / seg.path
            if not stat.S_ISREG(path.lstat().st_mode):
                return Verdict.UNREADABLE
            digest = hasher(path)
    except FileNotFoundError:
        digest = ""
    except OSError:
        return Verdict.UNREADABLE
    if digest is None:
        return None
    with writer.reader() as conn:
        now = queries.segments_by_ids(conn, [seg.id])
    if not now or (now[0].volume, now[0].path) != (seg.volume, seg.path):
        return Verdict.MOVED
    if not digest:
        return Verdict.MISSING
    return Verdict.OK if digest == seg.sha256 else Verdict.CORRUPT


def record(writer: CatalogWriter, seg: Segment, verdict: Verdict, now_ms: int, scrub: bool) -> None:
    """The verdict on the row (`segment_corrupt` counts corrupt rows of the last 24 h); a
    check outside the scrub leaves the scrub's cursor where it was."""
    writer.segments.set_integrity(seg.id, verdict, now_ms, advance_scrub=scrub)
    if verdict == Verdict.CORRUPT:
        log.error(
            "segment_corrupt",
            camera=seg.camera,
            segment_id=seg.id,
            volume=seg.volume,
            path=seg.path,
            expected=seg.sha256,
        )


@dataclass
class CheckReport:
    """`ccvault verify`: what was re-hashed and found."""

    checked: int = 0
    ok: int = 0
    bytes: int = 0
    found: dict[Verdict, list[Segment]] = field(default_factory=dict)

    def failed(self) -> bool:
        return any(v != Verdict.OK for v in self.found)

    def as_json(self) -> dict[str, Any]:
        def listed(verdict: Verdict) -> list[dict[str, Any]]:
            return [
                {"id": s.id, "camera": s.camera, "volume": s.volume, "start": utc_text(s.start_ms)}
                for s in self.found.get(verdict, [])
            ]

        return {
            "checked": self.checked,
            "ok": self.ok,
            "bytes": self.bytes,
            "corrupt": listed(Verdict.CORRUPT),
            "missing": listed(Verdict.MISSING),
            "unreadable": listed(Verdict.UNREADABLE),
            "not_checked": listed(Verdict.UNAVAILABLE) + listed(Verdict.MOVED),
        }


def check_now(
    writer: CatalogWriter,
    volumes: list[Volume],
    selection: queries.Selection,
    now_ms: Callable[[], int],
    actor: str,
    progress: Progress = SILENT,
) -> CheckReport:
    """Re-hash the selected segments now, at full speed, recording each verdict as the scrub
    does (a file put right clears `corrupt`) and the check itself in the audit log
    (`segments.verify`); `progress` hears of the selection's bytes, then each segment's. A
    row already `missing` is reported as such."""
    report = CheckReport()
    roots = readable_roots(volumes)
    with writer.reader() as conn:
        progress.expect(queries.selection_size(conn, selection)[1], Unit.BYTES)
    after = 0
    while True:
        with writer.reader() as conn:
            batch = queries.selected_segments(conn, selection, after, PAGE)
        if not batch:
            break
        for seg in batch:
            if seg.state == "missing":
                verdict: Verdict | None = Verdict.MISSING
            else:
                verdict = judge(writer, seg, roots.get(seg.volume), sha256_file)
            if verdict in (Verdict.OK, Verdict.CORRUPT):
                record(writer, seg, verdict, now_ms(), scrub=False)
            report.checked += 1
            report.bytes += seg.bytes
            if verdict == Verdict.OK:
                report.ok += 1
            elif verdict is not None:
                report.found.setdefault(verdict, []).append(seg)
            progress.advance(seg.bytes)
        after = batch[-1].id
    details = {
        "camera": selection.camera,
        "from": utc_text_or_none(selection.from_ms),
        "to": utc_text_or_none(selection.to_ms),
        "checked": report.checked,
        "ok": report.ok,
        **{v.value: [s.id for s in report.found[v]] for v in report.found},
    }
    writer.record_event(actor, "segments.verify", "segments", details, now_ms())
    return report
