"""Access events and the visits made from them. Events go in once each (the source's event id
is unique) and mark their rooms' visits for derivation in the same transaction; the derived
visits replace the room's from that time on, keeping each visit's id (its key event)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccvault.catalog.rows import AccessEvent, FilePosition, Visit

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


@dataclass(frozen=True, slots=True)
class Added:
    accepted: int
    duplicates: int
    rooms: dict[str, int]  # room -> earliest new event time: visits to derive again


class AccessWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def add_events(self, events: Sequence[AccessEvent], source: str, now_ms: int) -> Added:
        rooms: dict[str, int] = {}
        accepted = 0
        with self._core.transaction() as conn:
            for e in events:
                cur = conn.execute(
                    "INSERT INTO access_events (event_id, source, time_ms, door, room, person,"
                    " role, direction, result, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (event_id) DO NOTHING",
                    (
                        e.event_id,
                        source,
                        e.time_ms,
                        e.door,
                        e.room,
                        e.person,
                        e.role,
                        e.direction,
                        e.result,
                        now_ms,
                    ),
                )
                if cur.rowcount:
                    accepted += 1
                    rooms[e.room] = min(rooms.get(e.room, e.time_ms), e.time_ms)
            for room, from_ms in rooms.items():
                conn.execute(
                    "INSERT INTO visits_dirty (room, from_ms) VALUES (?, ?) ON CONFLICT (room)"
                    " DO UPDATE SET from_ms = excluded.from_ms"
                    " WHERE excluded.from_ms < visits_dirty.from_ms",
                    (room, from_ms),
                )
        return Added(accepted, len(events) - accepted, rooms)

    def store_visits(self, room: str, from_ms: int, visits: Sequence[Visit]) -> None:
        """The room's visits from `from_ms` on are `visits` (ids kept by key event); its mark
        for derivation goes if nothing earlier was marked meanwhile."""
        with self._core.transaction() as conn:
            keys = {v.key_event for v in visits}
            stale = [
                r[0]
                for r in conn.execute(
                    "SELECT key_event FROM visits WHERE room = ? AND COALESCE(entered_ms, left_ms)"
                    " >= ?",
                    (room, from_ms),
                )
                if r[0] not in keys
            ]
            conn.executemany("DELETE FROM visits WHERE key_event = ?", [(k,) for k in stale])
            for v in visits:
                _upsert(conn, room, v)
            conn.execute(
                "DELETE FROM visits_dirty WHERE room = ? AND from_ms >= ?", (room, from_ms)
            )

    def purge(self, before_ms: int, actor: str, now_ms: int) -> tuple[int, int]:
        """Access events and closed visits older than `before_ms`, gone with their audit
        record; (events, visits) removed."""
        with self._core.transaction() as conn:
            events = conn.execute(
                "DELETE FROM access_events WHERE time_ms < ?", (before_ms,)
            ).rowcount
            visits = conn.execute(
                "DELETE FROM visits WHERE COALESCE(left_ms, entered_ms) < ?", (before_ms,)
            ).rowcount
            self._core.audit(
                actor,
                "purge.access",
                "access",
                {"before_ms": before_ms, "events": events, "visits": visits},
                now_ms,
            )
        return events, visits

    def set_position(self, source: str, pos: FilePosition, now_ms: int) -> None:
        """Where a followed file was read to (after its events are stored)."""
        with self._core.transaction() as conn:
            conn.execute(
                'INSERT INTO access_sources (source, device, inode, "offset", line, updated_ms)'
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET"
                ' device = excluded.device, inode = excluded.inode, "offset" = excluded."offset",'
                " line = excluded.line, updated_ms = excluded.updated_ms",
                (source, pos.device, pos.inode, pos.offset, pos.line, now_ms),
            )


def _upsert(conn: sqlite3.Connection, room: str, v: Visit) -> None:
    conn.execute(
        "INSERT INTO visits (room, person, role, key_event, entered_ms, left_ms, doors,"
        " escorted_by, flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key_event) DO"
        " UPDATE SET person = excluded.person, role = excluded.role,"
        " entered_ms = excluded.entered_ms, left_ms = excluded.left_ms,"
        " doors = excluded.doors, escorted_by = excluded.escorted_by, flags = excluded.flags",
        (
            room,
            v.person,
            v.role,
            v.key_event,
            v.entered_ms,
            v.left_ms,
            json.dumps(v.doors),
            json.dumps(v.escorted_by),
            json.dumps([str(f) for f in v.flags]),
        ),
    )
