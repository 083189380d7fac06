"""The scrub: re-hash stored segments slowly, forever, so silent corruption is found.

Paced at `[integrity] scrub_mb_per_s` so it never competes with recording for the disk. A
mismatch raises `segment_corrupt` and flags the row; the file is kept as it is (evidence is
never silently replaced or repaired). The position survives restarts (meta `scrub_cursor`).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from ccvault.catalog import queries
from ccvault.catalog.writer import CatalogGone, CatalogWriter
from ccvault.config.model import Config
from ccvault.host.clock import Clock
from ccvault.storage.volumes import Volume

log = structlog.get_logger("ccvault.storage.integrity")

CHUNK = 1 << 20
IDLE_S = 60  # nothing to scrub: look again later


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
            except (CatalogGone, sqlite3.Error) as exc:  # catalog_error; try again later
                log.warning("scrub.paused", error=str(exc))
                found = False
            if not found:
                self.stop_event.wait(IDLE_S)

    def scrub_next(self) -> bool:
        """Check the next segment after the cursor (wrapping); False when there is none."""
        with self.writer.reader() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'scrub_cursor'").fetchone()
            cursor = int(row[0]) if row else 0
            found = conn.execute(
                "SELECT id FROM segments WHERE id > ? AND state = 'ok' ORDER BY id LIMIT 1",
                (cursor,),
            ).fetchone()
            if found is None and cursor:
                found = conn.execute(
                    "SELECT id FROM segments WHERE state = 'ok' ORDER BY id LIMIT 1"
                ).fetchone()
            if found is None:
                return False
            seg = queries.segments_by_ids(conn, [found[0]])[0]
        roots = {v.name: v.path for v in self.volumes() if v.available}
        if seg.volume not in roots:
            self.writer.segments.advance_scrub(seg.id)
            return True
        try:
            digest = paced_sha256(roots[seg.volume] / seg.path, self.bytes_per_s, self.stop_event)
        except FileNotFoundError:
            digest = None  # moved or purged meanwhile (reconcile reports real losses)
        if digest is None:
            if not self.stop_event.is_set():
                self.writer.segments.advance_scrub(seg.id)
            return True
        with self.writer.reader() as conn:
            now = queries.segments_by_ids(conn, [seg.id])
        if not now or (now[0].volume, now[0].path) != (seg.volume, seg.path):
            self.writer.segments.advance_scrub(seg.id)
            return True  # thinned or migrated while hashing: its new file is checked later
        verdict = "ok" if digest == seg.sha256 else "corrupt"
        self.writer.segments.set_integrity(seg.id, verdict, self.clock.wall_ms())
        if verdict == "corrupt":
            log.error(
                "segment_corrupt",
                camera=seg.camera,
                segment_id=seg.id,
                volume=seg.volume,
                path=seg.path,
                expected=seg.sha256,
                found=digest,
            )
        return True
