"""Reading what retention decides about: candidate segments in batches, by indexed SQL.

A routine pass never loads the catalog: per camera it walks only the index ranges where a rule
can be due — idle footage past `continuous_days` (partial index), other footage past
`motion_days`, unthinned idle footage past `thin_after_days` (partial index) — and per hot
volume the footage past `hot_days`. The ranges do not overlap, so no segment is planned twice.
Each query pages by (start_ms, id), so memory stays one batch whatever the backlog.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from ccvault.catalog.dialect import indexed_by
from ccvault.catalog.nodes import own_volume_names
from ccvault.config.model import Config
from ccvault.retention.planner import AccessCover, ArchiveRoom, Candidate, Policy, Protection
from ccvault.storage.volumes import Volume

BATCH = 2000
CANDIDATE_COLUMNS = """
    s.id, c.name AS camera, v.name AS volume, s.start_ms, s.end_ms, s.bytes, s.activity,
    s.analysis, s.thinned_ms, k.retain_until_ms, k.mode AS lock_mode, k.legal_hold
"""
# The lock of a segment's object on a locking bucket (one row by key, or none).
LOCK_JOIN = "LEFT JOIN object_locks k ON k.segment_id = s.id"
CANDIDATE_FROM = f"""
    FROM segments s JOIN cameras c ON c.id = s.camera_id JOIN volumes v ON v.id = s.volume_id
    {LOCK_JOIN}
"""
IDLE = "s.activity = 0 AND s.analysis IN (1, 2)"


@dataclass(frozen=True, slots=True)
class Scope:
    """What a pass may touch: each camera's policy, and the volumes (name → role) usable now,
    with those whose footage is files on this node (the others are buckets)."""

    policies: dict[str, Policy]
    roles: dict[str, str]
    camera_ids: dict[str, int]
    volume_ids: dict[str, int]
    files_here: frozenset[str]


def scope(conn: sqlite3.Connection, config: Config, usable: list[Volume]) -> Scope:
    """Cameras the catalog knows (a camera removed from the config keeps the global policy:
    its footage must still expire) and the available volumes the catalog knows that are this
    node's: footage on another node's volumes is that node's to keep or purge."""
    cameras = dict(conn.execute("SELECT name, id FROM cameras").fetchall())
    own = own_volume_names(conn, config.node.name)  # another node's footage is never ours
    roles = {v.name: v.role for v in usable}
    volumes = {
        n: i
        for n, i in conn.execute("SELECT name, id FROM volumes").fetchall()
        if n in roles and n in own
    }
    policies = {name: Policy.from_settings(config.retention_for(name)) for name in cameras}
    files = frozenset(v.name for v in usable if v.path is not None)
    return Scope(policies, {n: roles[n] for n in volumes}, cameras, volumes, files)


def _candidate(row: sqlite3.Row, sc: Scope) -> Candidate:
    return Candidate(
        row["id"],
        row["camera"],
        row["volume"],
        row["start_ms"],
        row["end_ms"],
        row["bytes"],
        bool(row["activity"]),
        row["analysis"] in (1, 2),
        row["thinned_ms"] is not None,
        sc.roles.get(row["volume"], "archive"),
        row["retain_until_ms"],
        row["lock_mode"],
        bool(row["legal_hold"]),
        row["volume"] in sc.files_here,
    )


def _pages(
    conn: sqlite3.Connection, where: str, params: tuple, sc: Scope, index: str
) -> Iterator[list[Candidate]]:
    """Keyset pages of candidates on available volumes, oldest first."""
    after = (-(2**62), 0)
    volume_ids = ",".join(str(i) for i in sc.volume_ids.values()) or "NULL"
    while True:
        rows = conn.execute(
            f"SELECT {CANDIDATE_COLUMNS} FROM segments s {indexed_by(conn, index)}"
            " JOIN cameras c ON c.id = s.camera_id JOIN volumes v ON v.id = s.volume_id"
            f" {LOCK_JOIN} WHERE {where} AND s.volume_id IN ({volume_ids})"
            " AND (s.start_ms, s.id) > (?, ?)"
            f" ORDER BY s.start_ms, s.id LIMIT {BATCH}",
            (*params, *after),
        ).fetchall()
        if not rows:
            return
        yield [_candidate(r, sc) for r in rows]
        after = (rows[-1]["start_ms"], rows[-1]["id"])


def routine(
    conn: sqlite3.Connection, sc: Scope, now_ms: int, archives: ArchiveRoom
) -> Iterator[list[Candidate]]:
    """Every segment some routine rule may act on now, in batches. Footage due to leave a
    hot volume is read only while an archive has room for it (planning consumes the room)."""
    for camera, camera_id in sc.camera_ids.items():
        p = sc.policies[camera]
        yield from _pages(
            conn,
            f"s.camera_id = ? AND {IDLE} AND s.start_ms < ?",
            (camera_id, now_ms - p.continuous_ms),
            sc,
            "segments_idle",
        )
        yield from _pages(
            conn,
            f"s.camera_id = ? AND NOT ({IDLE}) AND s.start_ms < ?",
            (camera_id, now_ms - p.motion_ms),
            sc,
            "segments_by_camera_start",
        )
        if p.thin_after_ms:
            yield from _pages(
                conn,
                f"s.camera_id = ? AND {IDLE} AND s.thinned_ms IS NULL"
                " AND s.start_ms >= ? AND s.start_ms < ?",
                (camera_id, now_ms - p.continuous_ms, now_ms - p.thin_after_ms),
                sc,
                "segments_idle_unthinned",
            )
    yield from _hot(conn, sc, now_ms, archives)


def _hot(
    conn: sqlite3.Connection, sc: Scope, now_ms: int, archives: ArchiveRoom
) -> Iterator[list[Candidate]]:
    """Footage on hot volumes past its camera's hot_days, minus what the camera queries
    above already returned — while an archive can take it. Without this stop, a store with
    no archive (or a full one) would walk all its hot footage every pass."""
    if not sc.policies:
        return
    oldest_due = now_ms - min(p.hot_ms for p in sc.policies.values())
    for volume, volume_id in sc.volume_ids.items():
        if sc.roles[volume] != "hot":
            continue
        for page in _pages(
            conn,
            "s.volume_id = ? AND s.start_ms < ?",
            (volume_id, oldest_due),
            sc,
            "segments_by_volume_start",
        ):
            if not archives.open:
                return
            yield [c for c in page if not _camera_query_returns(c, sc.policies[c.camera], now_ms)]


def _camera_query_returns(c: Candidate, p: Policy, now_ms: int) -> bool:
    if c.idle:
        return c.start_ms < now_ms - p.continuous_ms or (
            p.thin_after_ms > 0 and not c.thinned and c.start_ms < now_ms - p.thin_after_ms
        )
    return c.start_ms < now_ms - p.motion_ms


def everything(conn: sqlite3.Connection, sc: Scope) -> Iterator[list[Candidate]]:
    """Every segment, camera by camera (for `purge --dry-run --all`)."""
    for camera_id in sc.camera_ids.values():
        yield from _pages(conn, "s.camera_id = ?", (camera_id,), sc, "segments_by_camera_start")


def camera_oldest(conn: sqlite3.Connection, sc: Scope, camera: str) -> Iterator[list[Candidate]]:
    yield from _pages(
        conn, "s.camera_id = ?", (sc.camera_ids[camera],), sc, "segments_by_camera_start"
    )


def volume_oldest(conn: sqlite3.Connection, sc: Scope, volume: str) -> Iterator[list[Candidate]]:
    yield from _pages(
        conn, "s.volume_id = ?", (sc.volume_ids[volume],), sc, "segments_by_volume_start"
    )


def at_instant(conn: sqlite3.Connection, sc: Scope, camera: str, at_ms: int) -> Candidate | None:
    """The segment of a camera that holds the instant at_ms (the latest-starting one)."""
    row = conn.execute(
        f"SELECT {CANDIDATE_COLUMNS} {CANDIDATE_FROM} WHERE c.name = ? AND s.start_ms <= ?"
        " AND s.start_ms >= ? - c.max_segment_ms AND s.end_ms > ?"
        " ORDER BY s.start_ms DESC LIMIT 1",
        (camera, at_ms, at_ms, at_ms),
    ).fetchone()
    return _candidate(row, sc) if row else None


def usage(conn: sqlite3.Connection) -> tuple[dict[str, int], dict[str, int]]:
    """Bytes of footage per camera and per volume (trigger-kept counters, no scan)."""
    rows = conn.execute(
        "SELECT c.name AS camera, v.name AS volume, u.bytes FROM usage u"
        " JOIN cameras c ON c.id = u.camera_id JOIN volumes v ON v.id = u.volume_id"
    ).fetchall()
    per_camera: dict[str, int] = {}
    per_volume: dict[str, int] = {}
    for r in rows:
        per_camera[r["camera"]] = per_camera.get(r["camera"], 0) + r["bytes"]
        per_volume[r["volume"]] = per_volume.get(r["volume"], 0) + r["bytes"]
    return per_camera, per_volume


def protections(conn: sqlite3.Connection) -> list[Protection]:
    """Holds not released and export pins, whatever their end: the planner checks `until`
    against the time it plans for (so `--at` a later time sees a hold run out)."""
    cams: dict[int, set[str]] = {}
    for hold_id, camera in conn.execute("SELECT hold_id, camera FROM hold_cameras"):
        cams.setdefault(hold_id, set()).add(camera)
    out = [
        Protection(
            "hold",
            r["id"],
            frozenset(cams[r["id"]]) if r["id"] in cams else None,
            r["from_ms"],
            r["to_ms"],
            r["until_ms"],
        )
        for r in conn.execute(
            "SELECT id, from_ms, to_ms, until_ms FROM holds WHERE released_ms IS NULL"
        )
    ]
    out += [
        Protection(
            "export_pin", r["id"], frozenset([r["camera"]]), r["from_ms"], r["to_ms"], r["until_ms"]
        )
        for r in conn.execute("SELECT id, camera, from_ms, to_ms, until_ms FROM export_pins")
    ]
    return out


def access_covers(conn: sqlite3.Connection, config: Config, now_ms: int) -> list[AccessCover]:
    """Every visit whose footage may still be kept: open ones, and closed ones that ended
    within the longest access_days (padded by [access] padding_seconds)."""
    longest = max(
        [config.retention.access_days or 0]
        + [config.retention_for(c).access_days or 0 for c in config.cameras]
    )
    if not longest or not config.access.rooms:
        return []
    pad = round(config.access.padding_seconds * 1000)
    cameras = {r.name: frozenset(r.cameras) for r in config.access.rooms}
    out = []
    for r in conn.execute(
        "SELECT id, room, person, role, entered_ms, left_ms FROM visits"
        " WHERE left_ms IS NULL OR left_ms >= ?",
        (now_ms - round(longest * 86_400_000),),
    ):
        start = r["entered_ms"] if r["entered_ms"] is not None else r["left_ms"]
        if r["room"] in cameras:
            out.append(
                AccessCover(
                    r["id"],
                    r["person"],
                    r["role"],
                    cameras[r["room"]],
                    start - pad,
                    None if r["left_ms"] is None else r["left_ms"] + pad,
                )
            )
    return out
