"""Read-only catalog queries. Time ranges are half-open [from, to) in UTC milliseconds.

Every range query bounds `start_ms` from below by the camera's longest stored segment, so it
walks the (camera_id, start_ms) index only over the window, whatever the history's length.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ccvault.catalog.rows import (
    SPAN_COLUMNS,
    AlertRow,
    Direction,
    FilePosition,
    Flag,
    Result,
    Segment,
    StoredEvent,
    StoredSpan,
    StoredVisit,
    Visit,
    VolumeRow,
)
from ccvault.timefmt import utc_text

SEGMENT_COLUMNS = """
    s.id, c.name AS camera, v.name AS volume, s.start_ms, s.end_ms, s.path, s.bytes, s.sha256,
    s.codec, s.width, s.height, s.frames, s.origin, s.state, s.analysis, s.activity, s.integrity,
    v.node
"""
SEGMENT_FROM = """
    FROM segments s JOIN cameras c ON c.id = s.camera_id JOIN volumes v ON v.id = s.volume_id
"""


@dataclass(frozen=True, slots=True)
class CameraRow:
    id: int
    name: str
    max_segment_ms: int
    state: str
    state_since_ms: int | None
    state_reason: str | None


def catalog_id(conn: sqlite3.Connection) -> str:
    return conn.execute("SELECT value FROM meta WHERE key = 'catalog_id'").fetchone()[0]


def camera_names(conn: sqlite3.Connection) -> set[str]:
    """Every camera the catalog has footage or state for, configured now or not."""
    return {row[0] for row in conn.execute("SELECT name FROM cameras")}


def camera(conn: sqlite3.Connection, name: str) -> CameraRow | None:
    row = conn.execute(
        "SELECT id, name, max_segment_ms, state, state_since_ms, state_reason"
        " FROM cameras WHERE name = ?",
        (name,),
    ).fetchone()
    return CameraRow(**dict(row)) if row else None


def segments_in_range(
    conn: sqlite3.Connection,
    camera_name: str,
    from_ms: int,
    to_ms: int,
    activity_only: bool = False,
) -> list[Segment]:
    """Segments overlapping [from_ms, to_ms), in time order; optionally only those whose
    padded range overlaps activity."""
    cam = camera(conn, camera_name)
    if cam is None:
        return []
    rows = conn.execute(
        f"SELECT {SEGMENT_COLUMNS} {SEGMENT_FROM}"
        " WHERE s.camera_id = ? AND s.start_ms >= ? AND s.start_ms < ? AND s.end_ms > ?"
        + (" AND s.activity = 1" if activity_only else "")
        + " ORDER BY s.start_ms, s.id",
        (cam.id, from_ms - cam.max_segment_ms, to_ms, from_ms),
    ).fetchall()
    return [Segment.from_row(r) for r in rows]


def segments_by_ids(conn: sqlite3.Connection, ids: list[int]) -> list[Segment]:
    rows = conn.execute(
        f"SELECT {SEGMENT_COLUMNS} {SEGMENT_FROM} WHERE s.id IN ({','.join('?' * len(ids))})"
        " ORDER BY s.start_ms, s.id",
        ids,
    ).fetchall()
    return [Segment.from_row(r) for r in rows]


def same_footage(
    conn: sqlite3.Connection, camera_name: str, start_ms: int, sha256: str
) -> Segment | None:
    """The stored segment that holds exactly these bytes for this camera and start, if any."""
    row = conn.execute(
        f"SELECT {SEGMENT_COLUMNS} {SEGMENT_FROM}"
        " WHERE c.name = ? AND s.start_ms = ? AND s.sha256 = ?",
        (camera_name, start_ms, sha256),
    ).fetchone()
    return Segment.from_row(row) if row else None


def volume_rows(conn: sqlite3.Connection) -> dict[str, VolumeRow]:
    rows = conn.execute("SELECT id, name, uuid FROM volumes").fetchall()
    return {r["name"]: VolumeRow(r["id"], r["name"], r["uuid"]) for r in rows}


def volume_files(conn: sqlite3.Connection, volume_name: str) -> Iterator[tuple[int, str, str]]:
    """(segment id, relative path, state) of every segment catalogued on a volume."""
    yield from conn.execute(
        "SELECT s.id, s.path, s.state FROM segments s JOIN volumes v ON v.id = s.volume_id"
        " WHERE v.name = ?",
        (volume_name,),
    )


def footage_bytes(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT v.name, COALESCE(SUM(s.bytes), 0) FROM volumes v"
        " LEFT JOIN segments s ON s.volume_id = v.id AND s.state = 'ok' GROUP BY v.name"
    ).fetchall()
    return {name: total for name, total in rows}


@dataclass(frozen=True, slots=True)
class CameraActivity:
    segments: int
    bytes: int
    last_end_ms: int | None


def camera_activity(conn: sqlite3.Connection, camera_name: str, since_ms: int) -> CameraActivity:
    cam = camera(conn, camera_name)
    if cam is None:
        return CameraActivity(0, 0, None)
    count, total = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM segments"
        " WHERE camera_id = ? AND start_ms >= ?",
        (cam.id, since_ms),
    ).fetchone()
    last = conn.execute(
        "SELECT end_ms FROM segments WHERE camera_id = ? ORDER BY start_ms DESC LIMIT 1",
        (cam.id,),
    ).fetchone()
    return CameraActivity(count, total, last[0] if last else None)


def already_imported(
    conn: sqlite3.Connection, camera_name: str, source_sha256: str, start_ms: int
) -> bool:
    row = conn.execute(
        "SELECT 1 FROM imports i JOIN cameras c ON c.id = i.camera_id"
        " WHERE c.name = ? AND i.source_sha256 = ? AND i.start_ms = ?",
        (camera_name, source_sha256, start_ms),
    ).fetchone()
    return row is not None


def spans_in_range(
    conn: sqlite3.Connection,
    camera_name: str,
    from_ms: int,
    to_ms: int,
    kinds: tuple[str, ...] = ("motion",),
) -> list[StoredSpan]:
    """Spans of the given kinds overlapping [from_ms, to_ms), in time order."""
    cam = camera(conn, camera_name)
    if cam is None:
        return []
    longest = conn.execute("SELECT max_span_ms FROM cameras WHERE id = ?", (cam.id,)).fetchone()
    rows = conn.execute(
        f"SELECT {SPAN_COLUMNS} FROM motion_spans"
        f" WHERE camera_id = ? AND kind IN ({','.join('?' * len(kinds))})"
        " AND start_ms >= ? AND start_ms < ? AND end_ms >= ? ORDER BY start_ms, id",
        (cam.id, *kinds, from_ms - longest[0], to_ms, from_ms),
    ).fetchall()
    return [StoredSpan.from_row(camera_name, r) for r in rows]


def oldest_waiting(conn: sqlite3.Connection) -> list[Segment]:
    """Each camera's oldest segment still waiting for motion analysis (partial index)."""
    rows = conn.execute(
        f"SELECT {SEGMENT_COLUMNS} {SEGMENT_FROM} JOIN"
        " (SELECT camera_id, MIN(start_ms) AS first FROM segments"
        "  WHERE analysis = 0 AND state = 'ok'"
        "  GROUP BY camera_id) w ON w.camera_id = s.camera_id AND w.first = s.start_ms"
        " WHERE s.analysis = 0 AND s.state = 'ok'"
    ).fetchall()
    return [Segment.from_row(r) for r in rows]


def analysis_backlog(conn: sqlite3.Connection, camera_name: str) -> tuple[int, int]:
    """(segments, milliseconds of footage) waiting for motion analysis."""
    count, total = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(s.end_ms - s.start_ms), 0) FROM segments s"
        " JOIN cameras c ON c.id = s.camera_id WHERE c.name = ? AND s.analysis IN (0, 3)",
        (camera_name,),
    ).fetchone()
    return count, total


def waiting_analysis_ms(conn: sqlite3.Connection) -> dict[str, int]:
    """Per camera, how much footage analysis is behind: from the start of its oldest waiting
    segment to the end of its newest. Two probes of the partial index per camera, whatever
    the backlog (summing the waiting rows cost 10 s a call with a year of them)."""
    rows = conn.execute(
        "SELECT c.name,"
        " (SELECT s.end_ms FROM segments s WHERE s.camera_id = c.id AND s.analysis = 0"
        "  ORDER BY s.start_ms DESC LIMIT 1),"
        " (SELECT s.start_ms FROM segments s WHERE s.camera_id = c.id AND s.analysis = 0"
        "  ORDER BY s.start_ms LIMIT 1) FROM cameras c"
    ).fetchall()
    return {name: last - first for name, last, first in rows if first is not None}


@dataclass(frozen=True, slots=True)
class Selection:
    """Segments picked by camera (None: every camera) and by overlap with [from_ms, to_ms)
    (None: all time), as `ccvault verify` takes them."""

    camera: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None

    def where(self) -> tuple[str, dict[str, object]]:
        clauses, params = [], {"camera": self.camera, "lo": self.from_ms, "hi": self.to_ms}
        if self.camera is not None:
            clauses.append("c.name = :camera")
        if self.from_ms is not None and self.to_ms is not None:
            clauses.append("s.start_ms < :hi AND s.end_ms > :lo")
        return " AND ".join(clauses) or "1", params


def selection_size(conn: sqlite3.Connection, sel: Selection) -> tuple[int, int]:
    """How many segments the selection holds, and their bytes."""
    where, params = sel.where()
    count, total = conn.execute(
        f"SELECT COUNT(*), COALESCE(SUM(s.bytes), 0) {SEGMENT_FROM} WHERE {where}", params
    ).fetchone()
    return count, total


def selected_segments(
    conn: sqlite3.Connection, sel: Selection, after_id: int, limit: int
) -> list[Segment]:
    """The next page of the selection, by id (a whole catalog never sits in memory)."""
    where, params = sel.where()
    rows = conn.execute(
        f"SELECT {SEGMENT_COLUMNS} {SEGMENT_FROM} WHERE {where} AND s.id > :after"
        " ORDER BY s.id LIMIT :limit",
        {**params, "after": after_id, "limit": limit},
    ).fetchall()
    return [Segment.from_row(r) for r in rows]


def legal_holds_pending(conn: sqlite3.Connection) -> int:
    """Legal hold changes an object store has not taken yet (the daemon retries them): until
    then an object may lack the legal hold a hold asks for, or keep one released."""
    return conn.execute(
        "SELECT COUNT(*) FROM object_locks WHERE hold_wanted IS NOT NULL"
    ).fetchone()[0]


def corrupt_since(conn: sqlite3.Connection, since_ms: int) -> dict[str, int]:
    """Per camera, segments found corrupt since then: failed re-hashes and quarantined files."""
    out: dict[str, int] = {}
    for name, count in (
        conn.execute(
            "SELECT c.name, COUNT(*) FROM segments s JOIN cameras c ON c.id = s.camera_id"
            " WHERE s.integrity = 'corrupt' AND s.scrubbed_ms >= ? GROUP BY c.name",
            (since_ms,),
        ).fetchall()
        + conn.execute(
            "SELECT COALESCE(camera, '-'), COUNT(*) FROM quarantine WHERE created_ms >= ?"
            " GROUP BY camera",
            (since_ms,),
        ).fetchall()
    ):
        out[name] = out.get(name, 0) + count
    return out


def alerts(conn: sqlite3.Connection, since_ms: int) -> list[AlertRow]:
    """Firing alerts and those resolved since then, newest first."""
    return _alert_rows(
        conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE resolved_ms IS NULL OR resolved_ms >= ?"
            " ORDER BY started_ms DESC, id DESC",
            (since_ms,),
        ).fetchall()
    )


def unsent_events(conn: sqlite3.Connection) -> list[AlertRow]:
    """One-off events recorded by a process that reaches no channel (a CLI command), oldest
    first. The table holds history_days of alerts: a scan is cheap."""
    return _alert_rows(
        conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE event = 1 AND notified_ms IS NULL"
            " ORDER BY id"
        ).fetchall()
    )


_ALERT_COLUMNS = (
    "id, name, fingerprint, labels, severity, summary, details, event, started_ms,"
    " resolved_ms, notified_ms, notices, node"
)


def _alert_rows(rows: list[sqlite3.Row]) -> list[AlertRow]:
    return [
        AlertRow(
            name=r["name"],
            fingerprint=r["fingerprint"],
            labels=json.loads(r["labels"]),
            severity=r["severity"],
            summary=r["summary"],
            details=json.loads(r["details"]),
            event=bool(r["event"]),
            started_ms=r["started_ms"],
            resolved_ms=r["resolved_ms"],
            notified_ms=r["notified_ms"],
            node=r["node"],
            id=r["id"],
            notices=r["notices"],
        )
        for r in rows
    ]


def last_segment_ends(conn: sqlite3.Connection) -> dict[str, int]:
    """Each camera's newest footage end (one index probe per camera)."""
    return {
        name: end
        for name, end in conn.execute(
            "SELECT c.name, (SELECT s.end_ms FROM segments s WHERE s.camera_id = c.id"
            " ORDER BY s.start_ms DESC LIMIT 1) FROM cameras c"
        ).fetchall()
        if end is not None
    }


def intent_paths(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    """(volume, path) of every file an intent may still touch: reconcile leaves them be."""
    out = set()
    for src_volume, src_path, dst_volume, dst_path in conn.execute(
        "SELECT src_volume, src_path, dst_volume, dst_path FROM intents"
    ):
        out.add((src_volume, src_path))
        if dst_volume:
            out.add((dst_volume, dst_path))
    return out


# --- access control ---------------------------------------------------------------------

EVENT_COLUMNS = "id, event_id, source, time_ms, door, room, person, role, direction, result"
VISIT_COLUMNS = "id, room, person, role, key_event, entered_ms, left_ms, doors, escorted_by, flags"


def access_event_json(r: sqlite3.Row) -> dict[str, Any]:
    """An `access_events` row (EVENT_COLUMNS) as people see it: what `access-events --json`
    shows (`views.access.AccessEventOut`) and a visit's evidence bundle holds."""
    return {
        "id": r["event_id"],
        "time": utc_text(r["time_ms"]),
        "time_ms": r["time_ms"],
        "door": r["door"],
        "room": r["room"],
        "person": r["person"],
        "role": r["role"],
        "direction": r["direction"],
        "result": r["result"],
        "source": r["source"],
    }


def room_access_events(
    conn: sqlite3.Connection, room: str, from_ms: int, to_ms: int
) -> list[dict[str, Any]]:
    """Every event of the room in [from_ms, to_ms), in time order (`access_event_json`)."""
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM access_events WHERE room = ? AND time_ms >= ?"
        " AND time_ms < ? ORDER BY time_ms, id",
        (room, from_ms, to_ms),
    ).fetchall()
    return [access_event_json(r) for r in rows]


def visit_by_id(conn: sqlite3.Connection, visit_id: int) -> StoredVisit | None:
    row = conn.execute(f"SELECT {VISIT_COLUMNS} FROM visits WHERE id = ?", (visit_id,)).fetchone()
    return stored_visit(row) if row else None


def room_events(conn: sqlite3.Connection, room: str, from_ms: int) -> list[StoredEvent]:
    """The room's events from `from_ms` on, in the order they happened."""
    rows = conn.execute(
        "SELECT id, time_ms, door, person, role, direction, result FROM access_events"
        " WHERE room = ? AND time_ms >= ? ORDER BY time_ms, id",
        (room, from_ms),
    ).fetchall()
    return [
        StoredEvent(
            r["id"],
            r["time_ms"],
            r["door"],
            r["person"],
            r["role"],
            Direction(r["direction"]),
            Result(r["result"]),
        )
        for r in rows
    ]


def visits_inside(conn: sqlite3.Connection, room: str, at_ms: int) -> list[StoredVisit]:
    """Visits of the room that began before `at_ms` and had not ended by then."""
    rows = conn.execute(
        f"SELECT {VISIT_COLUMNS} FROM visits WHERE room = ? AND entered_ms < ?"
        " AND (left_ms IS NULL OR left_ms >= ?) ORDER BY entered_ms, key_event",
        (room, at_ms, at_ms),
    ).fetchall()
    return [stored_visit(r) for r in rows]


def dirty_rooms(conn: sqlite3.Connection) -> dict[str, int]:
    return {r["room"]: r["from_ms"] for r in conn.execute("SELECT room, from_ms FROM visits_dirty")}


def stored_visit(r: sqlite3.Row) -> StoredVisit:
    return StoredVisit(
        r["id"],
        r["room"],
        Visit(
            r["key_event"],
            r["person"],
            r["role"],
            r["entered_ms"],
            r["left_ms"],
            tuple(json.loads(r["doors"])),
            tuple(json.loads(r["escorted_by"])),
            tuple(Flag(f) for f in json.loads(r["flags"])),
        ),
    )


def visits_touching(
    conn: sqlite3.Connection, room: str, from_ms: int, to_ms: int
) -> list[StoredVisit]:
    """Visits of the room that ended within [from_ms, to_ms)."""
    rows = conn.execute(
        f"SELECT {VISIT_COLUMNS} FROM visits WHERE room = ? AND left_ms >= ? AND left_ms < ?"
        " ORDER BY left_ms, key_event",
        (room, from_ms, to_ms),
    ).fetchall()
    return [stored_visit(r) for r in rows]


def source_position(conn: sqlite3.Connection, source: str) -> FilePosition | None:
    row = conn.execute(
        'SELECT device, inode, "offset", line FROM access_sources WHERE source = ?', (source,)
    ).fetchone()
    return FilePosition(row[0], row[1], row[2], row[3]) if row else None
