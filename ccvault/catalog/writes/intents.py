"""Retention's file operations, each recorded as an intent before it touches a file (see
`retention.executor` and docs/design.md)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ccvault.catalog.rows import Intent, PlannedMove, Switch

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


class IntentWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def begin_deletes(
        self, segment_ids: list[int], now_ms: int, actor: str, details: dict[str, Any]
    ) -> list[Intent]:
        """Step 1 of a delete: in one transaction, re-check that nothing is held or pinned,
        record a delete intent per segment, drop the rows and audit the batch. Segments found
        protected now (a hold added since planning) are left alone and not returned."""
        with self._core.transaction() as conn:
            rows = _segment_rows(conn, segment_ids)
            intents, gone = [], []
            for row in rows:
                if protected_now(conn, row["camera"], row["start_ms"], row["end_ms"], now_ms):
                    continue
                intent_id = conn.execute(
                    "INSERT INTO intents (kind, segment_id, src_volume, src_path, created_ms)"
                    " VALUES ('delete', ?, ?, ?, ?) RETURNING id",
                    (row["id"], row["volume"], row["path"], now_ms),
                ).fetchone()[0]
                conn.execute("DELETE FROM segments WHERE id = ?", (row["id"],))
                intents.append(
                    Intent(
                        intent_id or 0, "delete", row["id"], row["volume"], row["path"], None, None
                    )
                )
                gone.append(
                    {
                        "id": row["id"],
                        "camera": row["camera"],
                        "start_ms": row["start_ms"],
                        "end_ms": row["end_ms"],
                        "bytes": row["bytes"],
                        "sha256": row["sha256"],
                        "volume": row["volume"],
                    }
                )
            if gone:
                self._core.audit(
                    actor,
                    "purge",
                    "segments",
                    {
                        **details,
                        "count": len(gone),
                        "bytes": sum(g["bytes"] for g in gone),
                        "segments": gone,
                    },
                    now_ms,
                )
            return intents

    def begin_moves(self, kind: str, moves: list[PlannedMove], now_ms: int) -> list[Intent]:
        """Record migrate/thin intents (segment id, destination volume, destination path)
        before any byte is copied, so a crash leaves a trail start-up can follow."""
        with self._core.transaction() as conn:
            rows = {r["id"]: r for r in _segment_rows(conn, [m.segment_id for m in moves])}
            out = []
            for move in moves:
                row = rows.get(move.segment_id)
                if row is None:
                    continue
                intent_id = conn.execute(
                    "INSERT INTO intents (kind, segment_id, src_volume, src_path, dst_volume,"
                    " dst_path, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        kind,
                        move.segment_id,
                        row["volume"],
                        row["path"],
                        move.dst_volume,
                        move.dst_path,
                        now_ms,
                    ),
                ).fetchone()[0]
                out.append(
                    Intent(
                        intent_id or 0,
                        kind,
                        move.segment_id,
                        row["volume"],
                        row["path"],
                        move.dst_volume,
                        move.dst_path,
                    )
                )
            return out

    def switch_copies(
        self, switches: list[Switch], now_ms: int, actor: str, action: str
    ) -> list[Intent]:
        """Point rows at their verified new copies, in one transaction with its audit record.

        A thinned copy replaces footage, so it is refused for anything held or pinned now; a
        row that no longer points at the intent's source is left alone. Returns the intents
        whose row was switched."""
        with self._core.transaction() as conn:
            done, audited = [], []
            for sw in switches:
                record = _switch(conn, sw, now_ms)
                if record is not None:
                    done.append(sw.intent)
                    audited.append(record)
            if audited and action == "thin":
                saved = sum(a["bytes"] - a["new_bytes"] for a in audited)
                for key, add in (("thinned_segments", len(audited)), ("thin_saved_bytes", saved)):
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                        " DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT)"
                        " + CAST(excluded.value AS BIGINT) AS TEXT)",
                        (key, str(add)),
                    )
            if audited:
                self._core.audit(
                    actor, action, "segments", {"count": len(audited), "segments": audited}, now_ms
                )
            return done

    def clear(self, intent_ids: Iterable[int]) -> None:
        with self._core.transaction() as conn:
            conn.executemany("DELETE FROM intents WHERE id = ?", [(i,) for i in intent_ids])


def _segment_rows(conn: sqlite3.Connection, ids: list[int]) -> list[sqlite3.Row]:
    if not ids:
        return []
    return conn.execute(
        "SELECT s.id, c.name AS camera, v.name AS volume, s.path, s.start_ms, s.end_ms,"
        " s.bytes, s.sha256 FROM segments s JOIN cameras c ON c.id = s.camera_id"
        f" JOIN volumes v ON v.id = s.volume_id WHERE s.id IN ({','.join('?' * len(ids))})",
        ids,
    ).fetchall()


def protected_now(
    conn: sqlite3.Connection, camera: str, start_ms: int, end_ms: int, now_ms: int
) -> bool:
    """The executor's safety rail, read inside its own transaction: held or pinned now?"""
    row = conn.execute(
        "SELECT 1 FROM holds h WHERE h.released_ms IS NULL"
        " AND (h.until_ms IS NULL OR h.until_ms > :now) AND h.from_ms < :end AND h.to_ms > :start"
        " AND (NOT EXISTS (SELECT 1 FROM hold_cameras x WHERE x.hold_id = h.id)"
        "      OR EXISTS (SELECT 1 FROM hold_cameras x WHERE x.hold_id = h.id"
        "                 AND x.camera = :camera))"
        " UNION ALL SELECT 1 FROM export_pins p WHERE p.camera = :camera"
        " AND (p.until_ms IS NULL OR p.until_ms > :now) AND p.from_ms < :end AND p.to_ms > :start"
        " LIMIT 1",
        {"now": now_ms, "start": start_ms, "end": end_ms, "camera": camera},
    ).fetchone()
    return row is not None


def _switch(conn: sqlite3.Connection, sw: Switch, now_ms: int) -> dict[str, Any] | None:
    """Point one row at its new copy and mark the intent switched; the audit entry, or None
    when the row has moved on (or, for a thinned copy, is protected now)."""
    it = sw.intent
    row = conn.execute(
        "SELECT s.id, c.name AS camera, s.start_ms, s.end_ms, s.sha256, s.bytes"
        " FROM segments s JOIN cameras c ON c.id = s.camera_id"
        " JOIN volumes v ON v.id = s.volume_id"
        " WHERE s.id = ? AND v.name = ? AND s.path = ?",
        (it.segment_id, it.src_volume, it.src_path),
    ).fetchone()
    if row is None or (
        it.kind == "thin"
        and protected_now(conn, row["camera"], row["start_ms"], row["end_ms"], now_ms)
    ):
        return None
    conn.execute(
        "UPDATE segments SET volume_id = (SELECT id FROM volumes WHERE name = ?),"
        " path = ?, bytes = ?, sha256 = ?, frames = ?,"
        " thinned_ms = CASE WHEN ? THEN ? ELSE thinned_ms END WHERE id = ?",
        (
            it.dst_volume,
            it.dst_path,
            sw.bytes,
            sw.sha256,
            sw.frames,
            it.kind == "thin",
            now_ms,
            it.segment_id,
        ),
    )
    conn.execute("UPDATE intents SET switched = 1 WHERE id = ?", (it.id,))
    return {
        "id": row["id"],
        "camera": row["camera"],
        "start_ms": row["start_ms"],
        "from": it.src_volume,
        "to": it.dst_volume,
        "sha256": row["sha256"],
        "bytes": row["bytes"],
        "new_sha256": sw.sha256,
        "new_bytes": sw.bytes,
    }
