"""What the rules look at, read from the catalog: per room, who is inside, when an escort last
left, recent motion on its cameras with the door log's view of each, recent denials."""

from __future__ import annotations

import sqlite3

from ccvault.access.rules import MotionSeen, RoomState
from ccvault.catalog import queries
from ccvault.config.access import RoomConfig
from ccvault.config.model import Config

# Motion is found after its segment is stored and analysed (up to a few segment lengths):
# spans that began this long ago are still judged.
MOTION_LOOKBACK_MS = 15 * 60_000


def read(conn: sqlite3.Connection, config: Config, now_ms: int) -> list[RoomState]:
    return [_room(conn, config, room, now_ms) for room in config.access.rooms]


def _room(conn: sqlite3.Connection, config: Config, room: RoomConfig, now_ms: int) -> RoomState:
    inside = tuple(
        queries.stored_visit(r)
        for r in conn.execute(
            f"SELECT {queries.VISIT_COLUMNS} FROM visits WHERE room = ? AND left_ms IS NULL"
            " AND entered_ms IS NOT NULL ORDER BY entered_ms, id",
            (room.name,),
        )
    )
    marks = ",".join("?" * len(room.escort_roles))
    escort_left = (
        conn.execute(
            f"SELECT MAX(left_ms) FROM visits WHERE room = ? AND role IN ({marks})",
            (room.name, *room.escort_roles),
        ).fetchone()[0]
        if room.escort_roles
        else None
    )
    window_ms = config.access.denied_minutes * 60_000
    denials: dict[str, list[int]] = {}
    for door, at in conn.execute(
        "SELECT door, time_ms FROM access_events WHERE room = ? AND result = 'denied'"
        " AND time_ms >= ? ORDER BY time_ms",
        (room.name, now_ms - window_ms),
    ):
        denials.setdefault(door, []).append(at)
    return RoomState(
        room,
        inside,
        escort_left,
        _motion(conn, room, now_ms),
        {door: tuple(times) for door, times in denials.items()},
    )


def _motion(conn: sqlite3.Connection, room: RoomConfig, now_ms: int) -> tuple[MotionSeen, ...]:
    seen = []
    for camera in room.cameras:
        for span in conn.execute(
            "SELECT s.id, s.start_ms, s.end_ms, s.people_max, s.people_max_ms"
            " FROM motion_spans s JOIN cameras c ON c.id = s.camera_id WHERE c.name = ?"
            " AND s.kind = 'motion' AND s.start_ms >= ? ORDER BY s.start_ms",
            (camera, now_ms - MOTION_LOOKBACK_MS),
        ):
            start = span["start_ms"]
            inside = conn.execute(
                "SELECT COUNT(*) FROM visits WHERE room = ? AND entered_ms <= ?"
                " AND (left_ms IS NULL OR left_ms >= ?)",
                (room.name, start, start),
            ).fetchone()[0]
            entry = conn.execute(
                "SELECT MAX(time_ms) FROM access_events WHERE room = ? AND direction = 'in'"
                " AND result = 'granted' AND time_ms <= ?",
                (room.name, start),
            ).fetchone()[0]
            seen.append(
                MotionSeen(
                    span["id"],
                    camera,
                    start,
                    span["end_ms"],
                    inside,
                    entry,
                    span["people_max"],
                    span["people_max_ms"],
                )
            )
    return tuple(seen)
