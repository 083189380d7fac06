"""Segments: the birth of a row, quarantined files, imports, and the scrub's verdicts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ccvault.catalog import queries
from ccvault.catalog.nodes import scrub_cursor_key
from ccvault.catalog.rows import NewSegment
from ccvault.catalog.writes.cameras import camera_row_id

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


class SegmentWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def add(self, seg: NewSegment, now_ms: int) -> int | None:
        """Insert a segment row; None when that volume path is already catalogued, or this
        very footage is — the same camera, start and SHA-256 anywhere (its natural key). So a
        retry after a commit whose outcome was unknown (`CommitUnknown`) never adds it twice,
        even if it was placed elsewhere meanwhile."""
        with self._core.transaction() as conn:
            camera_id = camera_row_id(conn, seg.camera, self._core.node)
            if queries.same_footage(conn, seg.camera, seg.start_ms, seg.sha256) is not None:
                return None
            volume_id = conn.execute(
                "SELECT id FROM volumes WHERE name = ?", (seg.volume,)
            ).fetchone()[0]
            row = conn.execute(
                "INSERT INTO segments (camera_id, volume_id, start_ms, end_ms, path, bytes,"
                " sha256, codec, width, height, frames, origin, ingested_ms, analysis)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (volume_id, path) DO NOTHING RETURNING id",
                (
                    camera_id,
                    volume_id,
                    seg.start_ms,
                    seg.end_ms,
                    seg.path,
                    seg.bytes,
                    seg.sha256,
                    seg.media.codec,
                    seg.media.width,
                    seg.media.height,
                    seg.media.frames,
                    seg.origin,
                    now_ms,
                    seg.analysis,
                ),
            ).fetchone()
            if row is None:  # that volume path is catalogued already
                return None
            segment_id: int = row[0]
            conn.execute(
                "UPDATE cameras SET max_segment_ms = ? WHERE id = ? AND max_segment_ms < ?",
                (seg.end_ms - seg.start_ms, camera_id, seg.end_ms - seg.start_ms),
            )
            return segment_id

    def mark_missing(self, segment_ids: Iterable[int]) -> None:
        with self._core.transaction() as conn:
            conn.executemany(
                "UPDATE segments SET state = 'missing' WHERE id = ?",
                [(i,) for i in segment_ids],
            )

    def mark_found(self, segment_ids: Iterable[int]) -> None:
        """Files of `missing` rows are back, byte for byte (reconcile checked their hash)."""
        with self._core.transaction() as conn:
            conn.executemany(
                "UPDATE segments SET state = 'ok' WHERE id = ? AND state = 'missing'",
                [(i,) for i in segment_ids],
            )

    def quarantine(
        self,
        volume: str | None,
        path: str,
        camera: str | None,
        reason: str,
        size: int,
        now_ms: int,
    ) -> None:
        with self._core.transaction() as conn:
            vol = conn.execute("SELECT id FROM volumes WHERE name = ?", (volume,)).fetchone()
            conn.execute(
                "INSERT INTO quarantine (volume_id, path, camera, reason, bytes, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (vol[0] if vol else None, path, camera, reason, size, now_ms),
            )

    def drop_quarantine(self, quarantine_id: int) -> None:
        with self._core.transaction() as conn:
            conn.execute("DELETE FROM quarantine WHERE id = ?", (quarantine_id,))

    def record_import(
        self,
        camera: str,
        source_name: str,
        source_sha256: str,
        start_ms: int,
        end_ms: int,
        segment_ids: list[int],
        actor: str,
        now_ms: int,
    ) -> None:
        """The file's import is done: its `imports` row and the `import.stored` record."""
        with self._core.transaction() as conn:
            conn.execute(
                "INSERT INTO imports (camera_id, source_name, source_sha256, start_ms,"
                " end_ms, segments, actor, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (
                    camera_row_id(conn, camera, self._core.node),
                    source_name,
                    source_sha256,
                    start_ms,
                    end_ms,
                    len(segment_ids),
                    actor,
                    now_ms,
                ),
            )
            self._core.audit(
                actor,
                "import.stored",
                f"camera:{camera}",
                {"file": source_name, "sha256": source_sha256, "segment_ids": segment_ids},
                now_ms,
            )

    def set_integrity(
        self, segment_id: int, verdict: str, now_ms: int, advance_scrub: bool = True
    ) -> None:
        """A re-hash's verdict; the scrub's own also moves its cursor past the segment."""
        with self._core.transaction() as conn:
            conn.execute(
                "UPDATE segments SET integrity = ?, scrubbed_ms = ? WHERE id = ?",
                (verdict, now_ms, segment_id),
            )
            if advance_scrub:
                _set_scrub_cursor(conn, segment_id, self._core.node)

    def advance_scrub(self, segment_id: int) -> None:
        with self._core.transaction() as conn:
            _set_scrub_cursor(conn, segment_id, self._core.node)


def _set_scrub_cursor(conn: sqlite3.Connection, segment_id: int, node: str | None) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (scrub_cursor_key(node), str(segment_id)),
    )
