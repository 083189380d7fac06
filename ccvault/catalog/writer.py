"""The only code that writes the catalog, for the daemon and CLI commands alike.

Each write is one short `BEGIN IMMEDIATE` transaction under a process-local lock, so threads
never interleave and other processes wait (busy timeout) instead of failing. Callers hand in
typed rows; the invariant "a row is committed only after its file is durable" is the caller's
(ingest), and this module never touches files.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccvault.catalog import db
from ccvault.catalog.rows import AlertRow, Intent, NewHold, NewSegment, Span, Switch
from ccvault.catalog.schema import migrate
from ccvault.errors import Busy

if TYPE_CHECKING:
    from ccvault.catalog.audit import AuditLog


class CatalogWriter:
    def __init__(self, path: Path, audit: AuditLog | None = None) -> None:
        self.path = path
        self.audit_log = audit
        self._conn = db.connect(path)
        self._lock = threading.Lock()
        self.last_error: str | None = None
        try:
            migrate(self._conn)
        except sqlite3.OperationalError as exc:
            raise Busy(str(path), f"catalog is locked ({exc})") from None
        self.catalog_id = self._ensure_catalog_id()

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write; `last_error` says whether the latest one failed in SQLite (the
        catalog_error alert), and clears with the next that commits."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                self.last_error = f"catalog is locked ({exc})"
                raise Busy(str(self.path), self.last_error) from None
            try:
                yield self._conn
            except BaseException as exc:
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                    self.last_error = str(exc)
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.last_error = str(exc)
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self.last_error = None

    def audit(self, actor: str, action: str, obj: str, details: dict[str, Any],
              now_ms: int) -> None:
        """Append an audit record; call inside `transaction()`, whose SQLite write lock is what
        serialises appends from the daemon and CLI commands so the hash chain never forks."""
        if not self._conn.in_transaction:
            raise RuntimeError("audit records are appended inside a catalog transaction")
        if self.audit_log is not None:
            self.audit_log.append(actor=actor, action=action, obj=obj, details=details,
                                  now_ms=now_ms)

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


    # --- Retention: every file operation is an intent first (see docs/design.md) ----------

    def begin_deletes(self, segment_ids: list[int], now_ms: int, actor: str,
                      details: dict[str, Any]) -> list[Intent]:
        """Step 1 of a delete: in one transaction, re-check that nothing is held or pinned,
        record a delete intent per segment, drop the rows and audit the batch. Segments found
        protected now (a hold added since planning) are left alone and not returned."""
        with self.transaction() as conn:
            rows = _segment_rows(conn, segment_ids)
            intents, gone = [], []
            for row in rows:
                if protected_now(conn, row["camera"], row["start_ms"], row["end_ms"], now_ms):
                    continue
                intent_id = conn.execute(
                    "INSERT INTO intents (kind, segment_id, src_volume, src_path, created_ms)"
                    " VALUES ('delete', ?, ?, ?, ?)",
                    (row["id"], row["volume"], row["path"], now_ms),
                ).lastrowid
                conn.execute("DELETE FROM segments WHERE id = ?", (row["id"],))
                intents.append(Intent(intent_id or 0, "delete", row["id"], row["volume"],
                                      row["path"], None, None))
                gone.append({"id": row["id"], "camera": row["camera"],
                             "start_ms": row["start_ms"], "end_ms": row["end_ms"],
                             "bytes": row["bytes"], "sha256": row["sha256"],
                             "volume": row["volume"]})
            if gone:
                self.audit(actor, "purge", "segments",
                           {**details, "count": len(gone),
                            "bytes": sum(g["bytes"] for g in gone), "segments": gone}, now_ms)
            return intents

    def begin_moves(self, kind: str, moves: list[tuple[int, str, str]],
                    now_ms: int) -> list[Intent]:
        """Record migrate/thin intents (segment id, destination volume, destination path)
        before any byte is copied, so a crash leaves a trail start-up can follow."""
        with self.transaction() as conn:
            rows = {r["id"]: r for r in _segment_rows(conn, [m[0] for m in moves])}
            out = []
            for seg_id, dst_volume, dst_path in moves:
                row = rows.get(seg_id)
                if row is None:
                    continue
                intent_id = conn.execute(
                    "INSERT INTO intents (kind, segment_id, src_volume, src_path, dst_volume,"
                    " dst_path, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (kind, seg_id, row["volume"], row["path"], dst_volume, dst_path, now_ms),
                ).lastrowid
                out.append(Intent(intent_id or 0, kind, seg_id, row["volume"], row["path"],
                                  dst_volume, dst_path))
            return out

    def switch_copies(self, switches: list[Switch], now_ms: int, actor: str,
                      action: str) -> list[Intent]:
        """Point rows at their verified new copies, in one transaction with its audit record.

        A thinned copy replaces footage, so it is refused for anything held or pinned now; a
        row that no longer points at the intent's source is left alone. Returns the intents
        whose row was switched."""
        with self.transaction() as conn:
            done, audited = [], []
            for sw in switches:
                it = sw.intent
                row = conn.execute(
                    "SELECT s.id, c.name AS camera, s.start_ms, s.end_ms, s.sha256, s.bytes"
                    " FROM segments s JOIN cameras c ON c.id = s.camera_id"
                    " JOIN volumes v ON v.id = s.volume_id"
                    " WHERE s.id = ? AND v.name = ? AND s.path = ?",
                    (it.segment_id, it.src_volume, it.src_path),
                ).fetchone()
                if row is None or (it.kind == "thin" and protected_now(
                        conn, row["camera"], row["start_ms"], row["end_ms"], now_ms)):
                    continue
                conn.execute(
                    "UPDATE segments SET volume_id = (SELECT id FROM volumes WHERE name = ?),"
                    " path = ?, bytes = ?, sha256 = ?, frames = ?,"
                    " thinned_ms = CASE WHEN ? THEN ? ELSE thinned_ms END WHERE id = ?",
                    (it.dst_volume, it.dst_path, sw.bytes, sw.sha256, sw.frames,
                     it.kind == "thin", now_ms, it.segment_id),
                )
                conn.execute("UPDATE intents SET switched = 1 WHERE id = ?", (it.id,))
                done.append(it)
                audited.append({"id": row["id"], "camera": row["camera"],
                                "start_ms": row["start_ms"], "from": it.src_volume,
                                "to": it.dst_volume, "sha256": row["sha256"],
                                "bytes": row["bytes"], "new_sha256": sw.sha256,
                                "new_bytes": sw.bytes})
            if audited and action == "thin":
                saved = sum(a["bytes"] - a["new_bytes"] for a in audited)
                for key, add in (("thinned_segments", len(audited)), ("thin_saved_bytes", saved)):
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                        " DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
                        (key, add))
            if audited:
                self.audit(actor, action, "segments",
                           {"count": len(audited), "segments": audited}, now_ms)
            return done

    def clear_intents(self, intent_ids: Iterable[int]) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM intents WHERE id = ?", [(i,) for i in intent_ids])

    def drop_quarantine(self, quarantine_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM quarantine WHERE id = ?", (quarantine_id,))

    def set_integrity(self, segment_id: int, verdict: str, now_ms: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE segments SET integrity = ?, scrubbed_ms = ? WHERE id = ?",
                         (verdict, now_ms, segment_id))
            _set_scrub_cursor(conn, segment_id)

    def advance_scrub(self, segment_id: int) -> None:
        with self.transaction() as conn:
            _set_scrub_cursor(conn, segment_id)

    def add_hold(self, hold: NewHold, now_ms: int) -> int:
        with self.transaction() as conn:
            hold_id = conn.execute(
                "INSERT INTO holds (id, from_ms, to_ms, until_ms, reason, actor, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (hold.id, hold.from_ms, hold.to_ms, hold.until_ms, hold.reason, hold.actor,
                 hold.created_ms or now_ms),
            ).lastrowid or 0
            conn.executemany("INSERT INTO hold_cameras (hold_id, camera) VALUES (?, ?)",
                             [(hold_id, c) for c in hold.cameras])
            self.audit(hold.actor, "hold.add", f"hold:{hold_id}",
                       {**hold.as_json(), "id": hold_id,
                        "created_ms": hold.created_ms or now_ms}, now_ms)
            return hold_id

    def release_hold(self, hold_id: int, actor: str, reason: str, now_ms: int) -> bool:
        """False when there is no such hold or it was already released."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE holds SET released_ms = ?, released_by = ?, release_reason = ?"
                " WHERE id = ? AND released_ms IS NULL", (now_ms, actor, reason, hold_id))
            if cur.rowcount:
                self.audit(actor, "hold.release", f"hold:{hold_id}",
                           {"id": hold_id, "reason": reason}, now_ms)
            return bool(cur.rowcount)

    def add_export_pin(self, camera: str, from_ms: int, to_ms: int, until_ms: int | None,
                       reason: str, now_ms: int) -> int:
        with self.transaction() as conn:
            return conn.execute(
                "INSERT INTO export_pins (camera, from_ms, to_ms, until_ms, reason, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)", (camera, from_ms, to_ms, until_ms, reason, now_ms),
            ).lastrowid or 0

    # --- users (HTTP API people) ---------------------------------------------------------

    def add_user(self, name: str, role: str, token_sha256: str, expires_ms: int | None,
                 actor: str, now_ms: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO users (name, role, token_sha256, created_ms, created_by, expires_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)", (name, role, token_sha256, now_ms, actor, expires_ms))
            self.audit(actor, "user.add", f"user:{name}",
                       {"name": name, "role": role, "expires_ms": expires_ms}, now_ms)

    def revoke_user(self, name: str, actor: str, now_ms: int) -> bool:
        with self.transaction() as conn:
            cur = conn.execute("UPDATE users SET revoked_ms = ? WHERE name = ?"
                               " AND revoked_ms IS NULL", (now_ms, name))
            if cur.rowcount:
                self.audit(actor, "user.revoke", f"user:{name}", {"name": name}, now_ms)
            return bool(cur.rowcount)

    # --- exports (evidence bundles) -------------------------------------------------------

    def add_export(self, camera: str, from_ms: int, to_ms: int, reason: str, actor: str,
                   bundle_dir: Callable[[int], str], details: dict[str, Any],
                   now_ms: int) -> int:
        """Record an export job (queued) and pin its range, in one transaction with the
        `export.start` record: footage is protected from the moment the job exists.
        bundle_dir maps the new id to the bundle's directory (it may refuse by raising)."""
        with self.transaction() as conn:
            export_id = conn.execute(
                "INSERT INTO exports (camera, from_ms, to_ms, reason, actor, dir, created_ms)"
                " VALUES (?, ?, ?, ?, ?, '', ?)",
                (camera, from_ms, to_ms, reason, actor, now_ms)).lastrowid or 0
            directory = bundle_dir(export_id)
            pin_id = conn.execute(
                "INSERT INTO export_pins (camera, from_ms, to_ms, until_ms, reason, created_ms)"
                " VALUES (?, ?, ?, NULL, ?, ?)",
                (camera, from_ms, to_ms, f"export {export_id}", now_ms)).lastrowid
            conn.execute("UPDATE exports SET dir = ?, pin_id = ? WHERE id = ?",
                         (directory, pin_id, export_id))
            self.audit(actor, "export.start", f"export:{export_id}",
                       {"id": export_id, "camera": camera, "from_ms": from_ms, "to_ms": to_ms,
                        "reason": reason, "dir": directory, **details}, now_ms)
            return export_id

    def start_export(self, export_id: int) -> bool:
        """queued/running → running, progress 0 (a resumed job starts from scratch); False
        when the job has finished meanwhile (another process ran it)."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE exports SET state = 'running', progress = 0, error = NULL"
                " WHERE id = ? AND state IN ('queued', 'running')", (export_id,))
            return bool(cur.rowcount)

    def export_progress(self, export_id: int, progress: float) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE exports SET progress = ? WHERE id = ? AND state = 'running'",
                         (min(max(progress, 0.0), 1.0), export_id))

    def finish_export(self, export_id: int, ok: bool, error: str | None, actor: str,
                      details: dict[str, Any], now_ms: int) -> None:
        """done/failed, its pin released, and `export.done`/`export.failed` — one transaction,
        so a job is never finished with its footage still pinned, or unpinned while running."""
        with self.transaction() as conn:
            row = conn.execute("SELECT pin_id FROM exports WHERE id = ?",
                               (export_id,)).fetchone()
            conn.execute(
                "UPDATE exports SET state = ?, error = ?, finished_ms = ?, pin_id = NULL,"
                " progress = CASE WHEN ? THEN 1 ELSE progress END WHERE id = ?",
                ("done" if ok else "failed", error, now_ms, ok, export_id))
            if row and row["pin_id"] is not None:
                conn.execute("DELETE FROM export_pins WHERE id = ?", (row["pin_id"],))
            self.audit(actor, "export.done" if ok else "export.failed", f"export:{export_id}",
                       {"id": export_id, **details, **({"error": error} if error else {})},
                       now_ms)

    def release_export_pin(self, pin_id: int) -> bool:
        """Drop one export pin (finish_export does this for its own job); False if gone."""
        with self.transaction() as conn:
            conn.execute("UPDATE exports SET pin_id = NULL WHERE pin_id = ?", (pin_id,))
            return bool(conn.execute("DELETE FROM export_pins WHERE id = ?",
                                     (pin_id,)).rowcount)

    # --- alerts (what fired, for `ccvault alerts` and a restarted daemon) -----------------

    def open_alert(self, row: AlertRow) -> int:
        """A firing alert (or a one-off event, saved resolved); its id."""
        with self.transaction() as conn:
            return conn.execute(
                "INSERT INTO alerts (name, fingerprint, labels, severity, summary, details,"
                " event, started_ms, resolved_ms, notified_ms, notices)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (row.name, row.fingerprint, json.dumps(row.labels, sort_keys=True),
                 row.severity, row.summary, json.dumps(row.details, sort_keys=True),
                 int(row.event), row.started_ms, row.resolved_ms, row.notified_ms),
            ).lastrowid or 0

    def renotify_alert(self, alert_id: int, severity: str, summary: str,
                       details: dict[str, str], now_ms: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE alerts SET severity = ?, summary = ?, details = ?,"
                         " notified_ms = ?, notices = notices + 1 WHERE id = ?",
                         (severity, summary, json.dumps(details, sort_keys=True), now_ms,
                          alert_id))

    def resolve_alert(self, alert_id: int, now_ms: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE alerts SET resolved_ms = ? WHERE id = ? AND resolved_ms IS NULL",
                         (now_ms, alert_id))

    def prune_alerts(self, before_ms: int) -> int:
        """History older than [alerts] history_days; firing alerts are never pruned."""
        with self.transaction() as conn:
            return conn.execute("DELETE FROM alerts WHERE resolved_ms < ?",
                                (before_ms,)).rowcount

    def record_event(self, actor: str, action: str, obj: str, details: dict[str, Any],
                     now_ms: int) -> None:
        """An audit record on its own (daemon start, reconcile repair)."""
        with self.transaction():
            self.audit(actor, action, obj, details, now_ms)


def _set_scrub_cursor(conn: sqlite3.Connection, segment_id: int) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES ('scrub_cursor', ?)"
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(segment_id),))


def _segment_rows(conn: sqlite3.Connection, ids: list[int]) -> list[sqlite3.Row]:
    if not ids:
        return []
    return conn.execute(
        "SELECT s.id, c.name AS camera, v.name AS volume, s.path, s.start_ms, s.end_ms,"
        " s.bytes, s.sha256 FROM segments s JOIN cameras c ON c.id = s.camera_id"
        f" JOIN volumes v ON v.id = s.volume_id WHERE s.id IN ({','.join('?' * len(ids))})",
        ids,
    ).fetchall()


def protected_now(conn: sqlite3.Connection, camera: str, start_ms: int, end_ms: int,
                  now_ms: int) -> bool:
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
