"""Finding footage: cameras at a glance, capped range searches, motion stepping, day timelines.

Every query here walks an index over its window only, as `catalog.queries` does: ranges are
bounded below by the camera's longest segment or span, "next"/"previous" is one index step,
and first/last footage are index ends. Searches are capped (`limit`) so no request can make
the daemon build a year of rows; the caller turns the cap into a "narrow the range" error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ccvault.catalog import db, queries
from ccvault.catalog.rows import SPAN_COLUMNS, StoredSpan
from ccvault.config.model import Config
from ccvault.retention.holds import listing
from ccvault.timefmt import to_ms, utc_text
from ccvault.views.models import CameraOut, HoldOut, RangeOut, SegmentOut, TimelineOut
from ccvault.views.status import camera_state

MINUTE_MS = 60_000
# Seams between consecutive segments (a frame interval, clock jitter) are not gaps.
GAP_MIN_MS = 1000


class TooMany(Exception):
    """More rows than the caller's limit: the range must be narrowed."""


def cameras(config: Config, conn: sqlite3.Connection, daemon_running: bool) -> list[CameraOut]:
    """Every configured camera with its state and the ends of its footage (two index ends)."""
    out = []
    for cam in config.cameras:
        row = queries.camera(conn, cam.name)
        first = last = None
        if row is not None:
            first, last = footage_ends(conn, row)
        state, since = camera_state(cam.enabled, row, daemon_running, last)
        out.append(
            CameraOut.of(
                cam.name, cam.enabled, state, since, (first, last), room=config.room_of(cam.name)
            )
        )
    return out


def footage_ends(conn: sqlite3.Connection, cam: queries.CameraRow) -> tuple[int | None, ...]:
    """(first start, last end) of a camera's stored footage: index ends, not a scan."""
    first = conn.execute(
        "SELECT start_ms FROM segments WHERE camera_id = ? AND state = 'ok'"
        " ORDER BY start_ms LIMIT 1",
        (cam.id,),
    ).fetchone()
    newest = conn.execute(
        "SELECT start_ms FROM segments WHERE camera_id = ? AND state = 'ok'"
        " ORDER BY start_ms DESC LIMIT 1",
        (cam.id,),
    ).fetchone()
    if first is None or newest is None:
        return None, None
    # The newest start need not have the latest end (footage recorded twice): look back one
    # longest segment.
    last = conn.execute(
        "SELECT MAX(end_ms) FROM segments WHERE camera_id = ? AND state = 'ok' AND start_ms >= ?",
        (cam.id, newest[0] - cam.max_segment_ms),
    ).fetchone()
    return first[0], last[0]


# The columns SegmentOut.from_row reads, by these names.
SEGMENT_ROW = (
    "s.id, c.name AS camera, v.name AS volume, s.start_ms, s.end_ms, s.bytes,"
    " s.sha256, s.codec, s.width, s.height, s.state, s.analysis, s.activity, s.origin,"
    " s.integrity, v.node"
)


def segments(
    conn: sqlite3.Connection, camera: str, from_ms: int, to_ms: int, activity_only: bool, limit: int
) -> list[SegmentOut]:
    """`queries.segments_in_range` (same bounds), capped: raises TooMany past `limit` rows.
    Rows become response objects directly: a search is the API's most frequent request."""
    cam = queries.camera(conn, camera)
    if cam is None:
        return []
    rows = conn.execute(
        f"SELECT {SEGMENT_ROW} {queries.SEGMENT_FROM}"
        " WHERE s.camera_id = ? AND s.start_ms >= ? AND s.start_ms < ? AND s.end_ms > ?"
        + (" AND s.activity = 1" if activity_only else "")
        + " ORDER BY s.start_ms, s.id LIMIT ?",
        (cam.id, from_ms - cam.max_segment_ms, to_ms, from_ms, limit + 1),
    ).fetchall()
    if len(rows) > limit:
        raise TooMany(limit)
    return [SegmentOut.from_row(r) for r in rows]


def spans(
    conn: sqlite3.Connection,
    camera: str,
    from_ms: int,
    to_ms: int,
    kinds: tuple[str, ...],
    limit: int,
) -> list[StoredSpan]:
    found = queries.spans_in_range(conn, camera, from_ms, to_ms, kinds)
    if len(found) > limit:
        raise TooMany(limit)
    return found


def step_span(
    conn: sqlite3.Connection, camera: str, at_ms: int, forward: bool, kinds: tuple[str, ...]
) -> StoredSpan | None:
    """The first span starting after at_ms (forward), or the last starting before it: one
    step along the (camera_id, start_ms) index, however many days away it is."""
    cam = queries.camera(conn, camera)
    if cam is None:
        return None
    op, order = (">", "ASC") if forward else ("<", "DESC")
    row = conn.execute(
        f"SELECT {SPAN_COLUMNS} FROM motion_spans WHERE camera_id = ? AND start_ms {op} ?"
        f" AND kind IN ({','.join('?' * len(kinds))}) ORDER BY start_ms {order}, id {order}"
        " LIMIT 1",
        (cam.id, at_ms, *kinds),
    ).fetchone()
    return StoredSpan.from_row(camera, row) if row else None


def local_day(day: date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a local calendar day in UTC ms. Midnight with fold=0 is the day's
    first instant even when DST makes midnight occur twice or skips it."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return to_ms(start), to_ms(end)


def timeline(
    config: Config, conn: sqlite3.Connection, camera: str, day: date, now_ms: int
) -> TimelineOut:
    """One local day: per-minute coverage, gaps, motion minutes and count, active holds."""
    start, end = local_day(day, config.tz)
    minutes = -(-(end - start) // MINUTE_MS)
    cam = queries.camera(conn, camera)
    covered: list[tuple[int, int]] = []
    motion: list[tuple[int, int]] = []
    if cam is not None:
        # Plain tuples: a day is ~1,440 rows (one-minute segments).
        covered = _merged(
            db.tuples(
                conn,
                "SELECT start_ms, end_ms FROM segments WHERE camera_id = ? AND start_ms >= ?"
                " AND start_ms < ? AND end_ms > ? AND state = 'ok' ORDER BY start_ms",
                (cam.id, start - cam.max_segment_ms, end, start),
            ),
            start,
            end,
        )
        longest = db.tuples(conn, "SELECT max_span_ms FROM cameras WHERE id = ?", (cam.id,))
        longest = longest.fetchone()[0]
        motion = db.tuples(
            conn,
            "SELECT start_ms, end_ms FROM motion_spans WHERE camera_id = ? AND kind = 'motion'"
            " AND start_ms >= ? AND start_ms < ? AND end_ms >= ?",
            (cam.id, start - longest, end, start),
        ).fetchall()
    return TimelineOut(
        camera=camera,
        date=day.isoformat(),
        timezone=config.timezone,
        start=utc_text(start),
        end=utc_text(end),
        start_ms=start,
        end_ms=end,
        minutes=minutes,
        coverage=_coverage(covered, start, end, minutes),
        gaps=[RangeOut.of(a, b) for a, b in _gaps(covered, start, end)],
        motion_minutes=_motion_minutes(motion, start, end),
        motion_count=len(motion),
        holds=holds_overlapping(conn, camera, start, end, now_ms, active_only=True),
    )


def _merged(rows: Iterable[Any], start: int, end: int) -> list[tuple[int, int]]:
    """Footage intervals clipped to the day, overlaps (recorded twice) merged."""
    out: list[tuple[int, int]] = []
    for a, b in rows:
        a, b = max(a, start), min(b, end)
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _coverage(covered: list[tuple[int, int]], start: int, end: int, minutes: int) -> list[float]:
    total = [0] * minutes
    for a, b in covered:
        i = (a - start) // MINUTE_MS
        while a < b:
            edge = min(b, start + (i + 1) * MINUTE_MS)
            total[i] += edge - a
            a, i = edge, i + 1
    last = (end - start) - (minutes - 1) * MINUTE_MS  # a day of whole minutes: 60,000
    return [round(ms / (MINUTE_MS if i < minutes - 1 else last), 3) for i, ms in enumerate(total)]


def _gaps(covered: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    out, at = [], start
    for a, b in [*covered, (end, end)]:
        if a - at >= GAP_MIN_MS:
            out.append((at, a))
        at = max(at, b)
    return out


def _motion_minutes(spans: list[tuple[int, int]], start: int, end: int) -> list[int]:
    found: set[int] = set()
    for a, b in spans:
        first = (max(a, start) - start) // MINUTE_MS
        last = (min(b, end - 1) - start) // MINUTE_MS  # spans are closed: [first, last frame]
        found.update(range(first, last + 1))
    return sorted(found)


def holds_overlapping(
    conn: sqlite3.Connection,
    camera: str | None,
    from_ms: int | None,
    to_ms: int | None,
    now_ms: int,
    active_only: bool = False,
) -> list[HoldOut]:
    """Holds covering a camera (None: any) and overlapping [from, to) (None: unbounded).
    The holds table is small (people make holds), so it is read whole."""
    out = []
    for hold in listing(conn, now_ms):
        if active_only and hold["state"] != "active":
            continue
        if camera is not None and hold["cameras"] and camera not in hold["cameras"]:
            continue
        if from_ms is not None and hold["to_ms"] <= from_ms:
            continue
        if to_ms is not None and hold["from_ms"] >= to_ms:
            continue
        out.append(HoldOut.model_validate(hold))
    return out
