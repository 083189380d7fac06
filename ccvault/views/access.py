"""Access events, visits and occupancy as people see them: one model per object, shared by the
CLI's `--json` and the API. Reading any of them is audited by the caller (they are personal
data: who entered which room when)."""

from __future__ import annotations

import sqlite3

from pydantic import Field

from ccvault.catalog import queries
from ccvault.catalog.rows import StoredVisit
from ccvault.config.model import Config
from ccvault.timefmt import utc_text_or_none
from ccvault.views.models import Out


class TooMany(Exception):
    """More rows than the caller's limit: the range must be narrowed."""


class AccessEventOut(Out):
    id: str = Field(description="The source's own event id.")
    time: str
    time_ms: int
    door: str
    room: str
    person: str
    role: str | None
    direction: str = Field(description="in | out")
    result: str = Field(description="granted | denied | forced | held_open")
    source: str = Field(description="http:<user> | mqtt | file")


class VisitOut(Out):
    id: int
    room: str
    person: str
    name: str | None = Field(description="From [[access.people]], when listed there.")
    role: str | None
    entered: str | None = Field(description="null: an exit with no entry (flag no_entry).")
    entered_ms: int | None
    left: str | None = Field(description="null: still inside.")
    left_ms: int | None
    doors: list[str]
    escorted_by: list[str] = Field(
        description="For an escorted role: who was inside with them (people of an escort role)."
    )
    flags: list[str] = Field(description="no_entry, entered_twice")

    @classmethod
    def of(cls, stored: StoredVisit, config: Config) -> VisitOut:
        v = stored.visit
        known = config.access.person(v.person)
        return cls(
            id=stored.id,
            room=stored.room,
            person=v.person,
            name=(known.name or None) if known else None,
            role=v.role,
            entered=utc_text_or_none(v.entered_ms),
            entered_ms=v.entered_ms,
            left=utc_text_or_none(v.left_ms),
            left_ms=v.left_ms,
            doors=list(v.doors),
            escorted_by=list(v.escorted_by),
            flags=[str(f) for f in v.flags],
        )


class RoomOccupancyOut(Out):
    room: str
    cameras: list[str]
    inside: list[VisitOut] = Field(description="Visits open now, earliest entry first.")
    count: int


def events(conn: sqlite3.Connection, from_ms: int, to_ms: int, limit: int) -> list[AccessEventOut]:
    rows = conn.execute(
        f"SELECT {queries.EVENT_COLUMNS} FROM access_events WHERE time_ms >= ? AND time_ms < ?"
        " ORDER BY time_ms, id LIMIT ?",
        (from_ms, to_ms, limit + 1),
    ).fetchall()
    if len(rows) > limit:
        raise TooMany(limit)
    return [AccessEventOut(**queries.access_event_json(r)) for r in rows]


def visits(
    conn: sqlite3.Connection,
    config: Config,
    from_ms: int,
    to_ms: int,
    room: str | None,
    person: str | None,
    limit: int,
) -> list[VisitOut]:
    """Visits overlapping [from, to), optionally of one room or one person."""
    sql = (
        f"SELECT {queries.VISIT_COLUMNS} FROM visits WHERE COALESCE(entered_ms, left_ms) < ?"
        " AND (left_ms IS NULL OR left_ms >= ?)"
    )
    args: list[object] = [to_ms, from_ms]
    for column, value in (("room", room), ("person", person)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    rows = conn.execute(
        sql + " ORDER BY COALESCE(entered_ms, left_ms), id LIMIT ?", (*args, limit + 1)
    ).fetchall()
    if len(rows) > limit:
        raise TooMany(limit)
    return [VisitOut.of(queries.stored_visit(r), config) for r in rows]


def visit(conn: sqlite3.Connection, config: Config, visit_id: int) -> VisitOut | None:
    row = conn.execute(
        f"SELECT {queries.VISIT_COLUMNS} FROM visits WHERE id = ?", (visit_id,)
    ).fetchone()
    return VisitOut.of(queries.stored_visit(row), config) if row else None


def occupancy(conn: sqlite3.Connection, config: Config) -> list[RoomOccupancyOut]:
    """Who is inside each configured room now, by the door log."""
    out = []
    for room in config.access.rooms:
        rows = conn.execute(
            f"SELECT {queries.VISIT_COLUMNS} FROM visits WHERE room = ? AND left_ms IS NULL"
            " AND entered_ms IS NOT NULL ORDER BY entered_ms, id",
            (room.name,),
        ).fetchall()
        inside = [VisitOut.of(queries.stored_visit(r), config) for r in rows]
        out.append(
            RoomOccupancyOut(
                room=room.name, cameras=list(room.cameras), inside=inside, count=len(inside)
            )
        )
    return out
