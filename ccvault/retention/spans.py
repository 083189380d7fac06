"""Motion spans past their camera's privacy ceiling.

A span says when someone was in front of a camera and where in the picture (its box): personal
data as much as the footage it was found in, and it would otherwise outlive that footage for
ever. So spans follow the footage's ceiling — `max_days` of their camera, counted from their
start; a camera gone from the config falls back to [retention] — unless a hold or export pin
covers them: a hold keeps footage *and* the spans that describe it. A span still going on
(`open`) is left until it closes. A pass finds them here (`expired`, also the dry run's
list) and deletes them through the writer (`MotionWrites.expire`), which re-checks holds in
its own transaction and audits `motion.expired`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from ccvault.catalog.nodes import owned
from ccvault.config.model import Config
from ccvault.retention.planner import Protection

DAY_MS = 86_400_000
BATCH = 2000


@dataclass(frozen=True, slots=True)
class ExpiredSpans:
    """One batch of a camera's closed spans that started before its ceiling."""

    camera: str
    before_ms: int
    ids: list[int]


def expired(
    conn: sqlite3.Connection, config: Config, protections: list[Protection], now_ms: int
) -> Iterator[ExpiredSpans]:
    """Per camera of this node the catalog knows, batches of closed spans past its ceiling
    that no active hold or pin covers; paged by (start_ms, id) over the camera's span index."""
    where, params = owned("node", config.node.name)  # another node's cameras, its policies
    for name, camera_id in conn.execute(
        f"SELECT name, id FROM cameras WHERE {where} ORDER BY name", params
    ).fetchall():
        before_ms = now_ms - round(config.retention_for(name).max_days * DAY_MS)
        guards = [p for p in protections if p.active(now_ms)]
        after = (-(2**62), 0)
        while True:
            rows = conn.execute(
                "SELECT id, start_ms, end_ms FROM motion_spans WHERE camera_id = ? AND open = 0"
                " AND start_ms < ? AND (start_ms, id) > (?, ?) ORDER BY start_ms, id LIMIT ?",
                (camera_id, before_ms, *after, BATCH),
            ).fetchall()
            if not rows:
                break
            ids = [
                r["id"]
                for r in rows
                # a span's end is its last moving frame: [start, end] overlaps [from, to)
                if not any(p.overlaps(name, r["start_ms"], r["end_ms"] + 1) for p in guards)
            ]
            if ids:
                yield ExpiredSpans(name, before_ms, ids)
            after = (rows[-1]["start_ms"], rows[-1]["id"])


def preview(
    conn: sqlite3.Connection, config: Config, protections: list[Protection], now_ms: int
) -> list[dict]:
    """What a pass at now_ms would delete, per camera (the dry run's `spans`)."""
    counts: dict[str, dict] = {}
    for batch in expired(conn, config, protections, now_ms):
        entry = counts.setdefault(batch.camera, {"camera": batch.camera, "spans": 0})
        entry["spans"] += len(batch.ids)
    return list(counts.values())
