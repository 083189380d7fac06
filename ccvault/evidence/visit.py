"""Evidence of a visit: the visit's room's cameras over the visit, padded, and every door event
of that room in the window — in one bundle whose signed manifest holds the visit and the events.

The window is [entered − padding, left + padding] (`[access] padding_seconds`, as retention
keeps a visit's footage); a visit still open runs up to the moment it was asked for, an exit
with no entry starts `padding` before the exit. The events are personal data: reading them
for a bundle is audited like `ccvault access-events` (`access.events`), naming the export.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from ccvault.catalog import queries
from ccvault.catalog.rows import StoredVisit
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.errors import NotFound, Refused
from ccvault.timefmt import utc_text_or_none

# What a door event in a bundle holds: the fields `ccvault access-events --json` shows.
EVENT_FIELDS = ("id", "time", "time_ms", "door", "room", "person", "role", "direction")
EVENT_FIELDS += ("result", "source")
VISIT_FIELDS = ("id", "room", "person", "role", "entered", "left", "doors", "escorted_by")
VISIT_FIELDS += ("flags",)


@dataclass(frozen=True)
class VisitRequest:
    """What exporting one visit means, worked out when it is asked for."""

    visit_id: int
    room: str
    cameras: tuple[str, ...]
    from_ms: int
    to_ms: int


def request(config: Config, writer: CatalogWriter, visit_id: int, now_ms: int) -> VisitRequest:
    """The visit's room, its cameras and the padded window; NotFound or Refused naming
    `visit` when there is no such visit or its room has no camera to export."""
    with writer.reader() as conn:
        stored = queries.visit_by_id(conn, visit_id)
    if stored is None:
        raise NotFound("visit", f"no visit {visit_id}")
    room = config.access.room(stored.room)
    if room is None:
        raise NotFound("visit", f"visit {visit_id}'s room {stored.room!r} is not in the config")
    if not room.cameras:
        raise Refused("visit", f"room {stored.room!r} has no camera to export")
    from_ms, to_ms = window(stored, round(config.access.padding_seconds * 1000), now_ms)
    return VisitRequest(visit_id, stored.room, tuple(room.cameras), from_ms, to_ms)


def window(stored: StoredVisit, padding_ms: int, now_ms: int) -> tuple[int, int]:
    """[entered − padding, left + padding]; open: up to now; no entry: from left − padding."""
    visit = stored.visit
    anchor = visit.entered_ms if visit.entered_ms is not None else visit.left_ms
    assert anchor is not None  # the table's CHECK: one of the two is set
    end = visit.left_ms + padding_ms if visit.left_ms is not None else now_ms
    return anchor - padding_ms, max(end, anchor + 1)


def visit_json(stored: StoredVisit) -> dict[str, Any]:
    """The visit as a bundle's manifest holds it."""
    v = stored.visit
    return {
        "id": stored.id,
        "room": stored.room,
        "person": v.person,
        "role": v.role,
        "entered": utc_text_or_none(v.entered_ms),
        "entered_ms": v.entered_ms,
        "left": utc_text_or_none(v.left_ms),
        "left_ms": v.left_ms,
        "doors": list(v.doors),
        "escorted_by": list(v.escorted_by),
        "flags": [str(f) for f in v.flags],
    }


def evidence(
    conn: sqlite3.Connection, visit_id: int, from_ms: int, to_ms: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The visit as it stands now, and its room's events in the window (as the job runs, so
    events that arrived late are in it). NotFound when the visit is gone meanwhile."""
    stored = queries.visit_by_id(conn, visit_id)
    if stored is None:
        raise NotFound("visit", f"visit {visit_id} is no longer in the catalog")
    return visit_json(stored), queries.room_access_events(conn, stored.room, from_ms, to_ms)


def manifest_problems(data: dict[str, Any]) -> list[str]:
    """A visit bundle's `visit` and `access_events` as a checker needs them: the visit an
    object with its fields, every event an object with the event fields, of the visit's room
    and inside the requested window. (Their bytes are covered by the signature.)"""
    visit, events = data.get("visit"), data.get("access_events")
    if not isinstance(visit, dict) or any(k not in visit for k in VISIT_FIELDS):
        return ["manifest.json: a visit bundle without its visit (" + ", ".join(VISIT_FIELDS) + ")"]
    if not isinstance(events, list):
        return ["manifest.json: a visit bundle without its access_events list"]
    problems = _camera_problems(data)
    requested = data.get("requested")
    lo, hi = (
        (requested.get("from_ms"), requested.get("to_ms"))
        if isinstance(requested, dict)
        else (None, None)
    )
    for i, item in enumerate(events):
        if not isinstance(item, dict) or any(k not in item for k in EVENT_FIELDS):
            problems.append(f"manifest.json: access_events[{i}] is not a door event")
        elif not isinstance(item["room"], str) or item["room"] != visit["room"]:
            problems.append(f"manifest.json: access_events[{i}] is of another room")
        elif not (isinstance(lo, int) and isinstance(hi, int) and type(item["time_ms"]) is int):
            problems.append(f"manifest.json: access_events[{i}] has no time in the window")
        elif not lo <= item["time_ms"] < hi:
            problems.append(f"manifest.json: access_events[{i}] is outside the requested window")
    return problems


def _camera_problems(data: dict[str, Any]) -> list[str]:
    """Each camera section names a camera, and a clip (if any) the file list holds."""
    cameras, files = data.get("cameras"), data.get("files")
    if not isinstance(cameras, list) or not cameras:
        return ["manifest.json: a visit bundle without its cameras list"]
    entries = files if isinstance(files, list) else []
    listed = {f["name"] for f in entries if isinstance(f, dict) and isinstance(f.get("name"), str)}
    problems = []
    for i, section in enumerate(cameras):
        if not isinstance(section, dict) or not isinstance(section.get("camera"), str):
            problems.append(f"manifest.json: cameras[{i}] does not name a camera")
        elif section.get("clip") is not None and not (
            isinstance(section["clip"], str) and section["clip"] in listed
        ):
            problems.append(f"manifest.json: cameras[{i}]'s clip is not in the file list")
    return problems
