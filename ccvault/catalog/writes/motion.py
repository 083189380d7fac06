"""Motion analysis results: spans, each segment's analysis state, activity flags."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ccvault.catalog.rows import AnalysisState, Span
from ccvault.catalog.writes.cameras import camera_row_id
from ccvault.catalog.writes.intents import protected_now
from ccvault.timefmt import utc_text

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


class MotionWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def record(
        self,
        camera: str,
        segment_ids: Iterable[int],
        state: int,
        closed: Iterable[Span],
        still_open: Span | None,
        pad_ms: tuple[int, int],
    ) -> None:
        """Store what analysing segments found, in one transaction: closed spans replace the
        camera's open one, the segments are marked, and segments near activity are flagged."""
        with self._core.transaction() as conn:
            camera_id = camera_row_id(conn, camera, self._core.node)
            conn.execute("DELETE FROM motion_spans WHERE camera_id = ? AND open = 1", (camera_id,))
            spans = [(s, 0) for s in closed] + ([(still_open, 1)] if still_open else [])
            for span, is_open in spans:
                conn.execute(
                    "INSERT INTO motion_spans (camera_id, start_ms, end_ms, peak, area, kind,"
                    " x0, y0, x1, y1, open, people_max, people_max_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        camera_id,
                        span.start_ms,
                        span.end_ms,
                        span.peak,
                        span.area,
                        span.kind,
                        *span.bbox,
                        is_open,
                        span.people_max,
                        span.people_max_ms,
                    ),
                )
                conn.execute(
                    "UPDATE cameras SET max_span_ms = ? WHERE id = ? AND max_span_ms < ?",
                    (span.end_ms - span.start_ms, camera_id, span.end_ms - span.start_ms),
                )
                self._flag_activity(
                    conn, camera_id, span.start_ms - pad_ms[0], span.end_ms + pad_ms[1]
                )
            conn.executemany(
                "UPDATE segments SET analysis = ? WHERE id = ?", [(state, i) for i in segment_ids]
            )

    @staticmethod
    def _flag_activity(conn: sqlite3.Connection, camera_id: int, from_ms: int, to_ms: int) -> None:
        longest = conn.execute(
            "SELECT max_segment_ms FROM cameras WHERE id = ?", (camera_id,)
        ).fetchone()[0]
        conn.execute(
            "UPDATE segments SET activity = 1 WHERE camera_id = ? AND start_ms >= ?"
            " AND start_ms < ? AND end_ms > ? AND activity = 0",
            (camera_id, from_ms - longest, to_ms, from_ms),
        )

    def expire(
        self, camera: str, span_ids: list[int], before_ms: int, actor: str, now_ms: int
    ) -> int:
        """Delete spans past their camera's ceiling (`retention.spans`), except any a hold or
        pin covers by now (re-checked here, in the deleting transaction); audited with how
        many went. Returns that number."""
        with self._core.transaction() as conn:
            rows = conn.execute(
                "SELECT id, start_ms, end_ms FROM motion_spans WHERE open = 0"
                f" AND id IN ({','.join('?' * len(span_ids))})",
                span_ids,
            ).fetchall()
            gone = [
                r["id"]
                for r in rows
                if not protected_now(conn, camera, r["start_ms"], r["end_ms"] + 1, now_ms)
            ]
            conn.executemany("DELETE FROM motion_spans WHERE id = ?", [(i,) for i in gone])
            if gone:
                self._core.audit(
                    actor,
                    "motion.expired",
                    f"camera:{camera}",
                    {"camera": camera, "spans": len(gone), "before": utc_text(before_ms)},
                    now_ms,
                )
            return len(gone)

    def reset(self, state: AnalysisState, to: AnalysisState) -> int:
        """Every segment in `state` goes to `to` (start-up recovery); how many."""
        with self._core.transaction() as conn:
            return conn.execute(
                "UPDATE segments SET analysis = ? WHERE analysis = ?", (to, state)
            ).rowcount

    def skip(self, cameras: Iterable[str], state: int) -> None:
        """Mark every waiting segment of these cameras (motion disabled for them)."""
        with self._core.transaction() as conn:
            conn.executemany(
                "UPDATE segments SET analysis = ? WHERE analysis = 0"
                " AND camera_id = (SELECT id FROM cameras WHERE name = ?)",
                [(state, name) for name in cameras],
            )

    def set_state(self, segment_ids: Iterable[int], state: int) -> None:
        with self._core.transaction() as conn:
            conn.executemany(
                "UPDATE segments SET analysis = ? WHERE id = ?", [(state, i) for i in segment_ids]
            )
