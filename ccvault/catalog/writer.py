"""The only code that writes the catalog, for the daemon and CLI commands alike.

Each write is one short `BEGIN IMMEDIATE` transaction under a process-local lock, so threads
never interleave and other processes wait (busy timeout) instead of failing. Callers hand in
typed rows; the invariant "a row is committed only after its file is durable" is the caller's
(ingest), and this module never touches files.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path

from ccvault.catalog import db
from ccvault.catalog.rows import NewSegment, Span
from ccvault.catalog.schema import migrate
from ccvault.errors import Busy


class CatalogWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = db.connect(path)
        self._lock = threading.Lock()
        try:
            migrate(self._conn)
        except sqlite3.OperationalError as exc:
            raise Busy(str(path), f"catalog is locked ({exc})") from None
        self.catalog_id = self._ensure_catalog_id()

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise Busy(str(self.path), f"catalog is locked ({exc})") from None
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def reader(self) -> AbstractContextManager[sqlite3.Connection]:
        """A separate connection for reads (closed on exit): readers never take the writer's
        lock."""
        return closing(db.connect(self.path, readonly=True))

    def _ensure_catalog_id(self) -> str:
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'catalog_id'").fetchone()
            if row:
                return row[0]
            new_id = str(uuid.uuid4())
            conn.execute("INSERT INTO meta (key, value) VALUES ('catalog_id', ?)", (new_id,))
            return new_id

    @staticmethod
    def _camera_id(conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT id FROM cameras WHERE name = ?", (name,)).fetchone()
        if row:
            return row[0]
        return conn.execute("INSERT INTO cameras (name) VALUES (?)", (name,)).lastrowid or 0

    def ensure_cameras(self, names: Iterable[str]) -> None:
        with self.transaction() as conn:
            for name in names:
                self._camera_id(conn, name)

    def register_volume(self, name: str, volume_uuid: str, now_ms: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO volumes (name, uuid, initialised_ms) VALUES (?, ?, ?)",
                (name, volume_uuid, now_ms),
            )

    def replace_volume(self, name: str, new_uuid: str, now_ms: int) -> int:
        """A new disk stands in for a lost one: its catalogued footage is gone (marked missing)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE volumes SET uuid = ?, initialised_ms = ? WHERE name = ?",
                (new_uuid, now_ms, name),
            )
            cur = conn.execute(
                "UPDATE segments SET state = 'missing' WHERE state = 'ok'"
                " AND volume_id = (SELECT id FROM volumes WHERE name = ?)",
                (name,),
            )
            return cur.rowcount

    def add_segment(self, seg: NewSegment, now_ms: int) -> int | None:
        """Insert a segment row; None when that volume path is already catalogued."""
        with self.transaction() as conn:
            camera_id = self._camera_id(conn, seg.camera)
            volume_id = conn.execute(
                "SELECT id FROM volumes WHERE name = ?", (seg.volume,)
            ).fetchone()[0]
            try:
                cur = conn.execute(
                    "INSERT INTO segments (camera_id, volume_id, start_ms, end_ms, path, bytes,"
                    " sha256, codec, width, height, frames, origin, ingested_ms, analysis)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        camera_id, volume_id, seg.start_ms, seg.end_ms, seg.path, seg.bytes,
                        seg.sha256, seg.media.codec, seg.media.width, seg.media.height,
                        seg.media.frames, seg.origin, now_ms, seg.analysis,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    return None
                raise
            conn.execute(
                "UPDATE cameras SET max_segment_ms = MAX(max_segment_ms, ?) WHERE id = ?",
                (seg.end_ms - seg.start_ms, camera_id),
            )
            return cur.lastrowid

    def mark_missing(self, segment_ids: Iterable[int]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE segments SET state = 'missing' WHERE id = ?",
                [(i,) for i in segment_ids],
            )

    def add_quarantine(
        self, volume: str | None, path: str, camera: str | None, reason: str, size: int,
        now_ms: int,
    ) -> None:
        with self.transaction() as conn:
            vol = conn.execute("SELECT id FROM volumes WHERE name = ?", (volume,)).fetchone()
            conn.execute(
                "INSERT INTO quarantine (volume_id, path, camera, reason, bytes, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (vol[0] if vol else None, path, camera, reason, size, now_ms),
            )

    def record_analysis(
        self, camera: str, segment_ids: Iterable[int], state: int, closed: Iterable[Span],
        still_open: Span | None, pad_ms: tuple[int, int],
    ) -> None:
        """Store what analysing segments found, in one transaction: closed spans replace the
        camera's open one, the segments are marked, and segments near activity are flagged."""
        with self.transaction() as conn:
            camera_id = self._camera_id(conn, camera)
            conn.execute("DELETE FROM motion_spans WHERE camera_id = ? AND open = 1", (camera_id,))
            spans = [(s, 0) for s in closed] + ([(still_open, 1)] if still_open else [])
            for span, is_open in spans:
                conn.execute(
                    "INSERT INTO motion_spans (camera_id, start_ms, end_ms, peak, area, kind,"
                    " x0, y0, x1, y1, open) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (camera_id, span.start_ms, span.end_ms, span.peak, span.area, span.kind,
                     *span.bbox, is_open),
                )
                conn.execute(
                    "UPDATE cameras SET max_span_ms = MAX(max_span_ms, ?) WHERE id = ?",
                    (span.end_ms - span.start_ms, camera_id),
                )
                self._flag_activity(conn, camera_id, span.start_ms - pad_ms[0],
                                    span.end_ms + pad_ms[1])
            conn.executemany("UPDATE segments SET analysis = ? WHERE id = ?",
                             [(state, i) for i in segment_ids])

    @staticmethod
    def _flag_activity(conn: sqlite3.Connection, camera_id: int, from_ms: int,
                       to_ms: int) -> None:
        longest = conn.execute("SELECT max_segment_ms FROM cameras WHERE id = ?",
                               (camera_id,)).fetchone()[0]
        conn.execute(
            "UPDATE segments SET activity = 1 WHERE camera_id = ? AND start_ms >= ?"
            " AND start_ms < ? AND end_ms > ? AND activity = 0",
            (camera_id, from_ms - longest, to_ms, from_ms),
        )

    def skip_analysis(self, cameras: Iterable[str], state: int) -> None:
        """Mark every waiting segment of these cameras (motion disabled for them)."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE segments SET analysis = ? WHERE analysis = 0"
                " AND camera_id = (SELECT id FROM cameras WHERE name = ?)",
                [(state, name) for name in cameras],
            )

    def set_analysis(self, segment_ids: Iterable[int], state: int) -> None:
        with self.transaction() as conn:
            conn.executemany("UPDATE segments SET analysis = ? WHERE id = ?",
                             [(state, i) for i in segment_ids])

    def set_camera_state(self, name: str, state: str, since_ms: int, reason: str) -> None:
        with self.transaction() as conn:
            camera_id = self._camera_id(conn, name)
            conn.execute(
                "UPDATE cameras SET state = ?, state_since_ms = ?, state_reason = ? WHERE id = ?",
                (state, since_ms, reason, camera_id),
            )

    def record_import(
        self, camera: str, source_name: str, source_sha256: str, start_ms: int, end_ms: int,
        segments: int, actor: str, now_ms: int,
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO imports (camera_id, source_name, source_sha256, start_ms,"
                " end_ms, segments, actor, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self._camera_id(conn, camera), source_name, source_sha256, start_ms,
                    end_ms, segments, actor, now_ms,
                ),
            )

