"""Forecast and headroom: will the storage keep what the policy promises, at today's rate?

Write rate: each camera's ingest over the last 24 h (scaled up when it has recorded for less).
Days a volume holds = its usable bytes (size minus reserve, capped by `max_bytes`) ÷ the total
write rate. Headroom = (free space above the reserve + footage that may go without breaking
`min_days`, holds or pins) ÷ the write rate. A store that holds fewer days than the longest
`min_days` raises the `retention_at_risk` alert (ccvault.alerts).

Volumes on one filesystem share its size and free space. Per volume the numbers say what
that volume could hold or take on its own (each can take the shared free space, not both, and
`shares_filesystem_with` names the others); the store's totals count each filesystem once
(its size minus the largest reserve on it, capped by the sum of its volumes' `max_bytes`
when all have one; its free space above that reserve), plus every volume's own footage that
may go.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field

import psutil

from ccvault.config.model import Config
from ccvault.retention import candidates
from ccvault.retention.planner import DAY_MS
from ccvault.storage.volumes import Volume


def _camera_rate(conn: sqlite3.Connection, name: str, now_ms: int) -> tuple[int, float]:
    """(bytes in the last 24 h, bytes per day)."""
    row = conn.execute(
        "SELECT COALESCE(SUM(s.bytes), 0), MIN(s.start_ms) FROM segments s"
        " JOIN cameras c ON c.id = s.camera_id WHERE c.name = ? AND s.start_ms >= ?",
        (name, now_ms - DAY_MS),
    ).fetchone()
    total, first = row[0], row[1]
    if not total:
        return 0, 0.0
    window = max(now_ms - first, 60_000)
    return total, total * DAY_MS / window


def _recent_bytes(conn: sqlite3.Connection, volume: str, since_ms: int) -> int:
    return conn.execute(
        "SELECT COALESCE(SUM(s.bytes), 0) FROM segments s JOIN volumes v ON v.id = s.volume_id"
        " WHERE v.name = ? AND s.start_ms >= ? AND s.state = 'ok'",
        (volume, since_ms),
    ).fetchone()[0]


def _protected_bytes(conn: sqlite3.Connection, now_ms: int) -> dict[str, int]:
    out: dict[str, int] = {}
    seen: set[int] = set()
    for p in candidates.protections(conn):
        if not p.active(now_ms):
            continue
        cams = (
            sorted(p.cameras)
            if p.cameras
            else [r[0] for r in conn.execute("SELECT name FROM cameras")]
        )
        for cam in cams:
            for r in conn.execute(
                "SELECT s.id, v.name, s.bytes FROM segments s JOIN cameras c"
                " ON c.id = s.camera_id JOIN volumes v ON v.id = s.volume_id"
                " WHERE c.name = ? AND s.start_ms >= ? - c.max_segment_ms AND s.start_ms < ?"
                " AND s.end_ms > ?",
                (cam, p.from_ms, p.to_ms, p.from_ms),
            ):
                if r[0] not in seen:
                    seen.add(r[0])
                    out[r[1]] = out.get(r[1], 0) + r[2]
    return out


def build(conn: sqlite3.Connection, config: Config, volumes: list[Volume], now_ms: int) -> dict:
    cameras = {}
    for cam in config.cameras:
        last_24h, per_day = _camera_rate(conn, cam.name, now_ms)
        cameras[cam.name] = {"bytes_24h": last_24h, "bytes_per_day": round(per_day)}
    rate = sum(c["bytes_per_day"] for c in cameras.values())
    min_days = max(
        [config.retention.min_days] + [config.retention_for(c).min_days for c in config.cameras]
    )
    footage = candidates.usage(conn)[1]
    protected = _protected_bytes(conn, now_ms)
    settings = {v.name: v for v in config.storage.volumes}
    out_volumes: dict[str, dict] = {}
    filesystems: dict[int, _Filesystem] = {}
    deletable_total = 0
    for volume in volumes:
        cfg = settings.get(volume.name)
        if not volume.available or cfg is None or volume.path is None:
            continue  # (an s3 volume has no filesystem: its quota is max_bytes)
        du = psutil.disk_usage(str(volume.path))
        fs = filesystems.setdefault(os.stat(volume.path).st_dev, _Filesystem(du.total, du.free))
        reserve = cfg.reserve_bytes(du.total)
        fs.add(volume.name, reserve, cfg.max_bytes)
        usable = du.total - reserve
        if cfg.max_bytes is not None:
            usable = min(usable, cfg.max_bytes)
        recent = _recent_bytes(conn, volume.name, now_ms - round(min_days * DAY_MS))
        deletable = max(footage.get(volume.name, 0) - recent - protected.get(volume.name, 0), 0)
        deletable_total += deletable
        headroom = max(du.free - reserve, 0) + deletable
        out_volumes[volume.name] = {
            "days": _days(usable, rate),
            "headroom_days": _days(headroom, rate),
            "usable_bytes": usable,
            "deletable_bytes": deletable,
        }
    for fs in filesystems.values():
        for name in fs.volumes:
            out_volumes[name]["shares_filesystem_with"] = [v for v in fs.volumes if v != name]
    usable_total = sum(fs.usable() for fs in filesystems.values())
    headroom_total = sum(fs.free_above_reserve() for fs in filesystems.values()) + deletable_total
    store_days = _days(usable_total, rate)
    for name, cam in cameras.items():
        policy = config.retention_for(name)
        cam["policy_days"] = policy.motion_days
        cam["min_days"] = policy.min_days
        cam["forecast_days"] = store_days
        cam["at_risk"] = store_days is not None and store_days < policy.min_days
    return {
        "bytes_per_day": rate,
        "days": store_days,
        "headroom_days": _days(headroom_total, rate),
        "min_days": min_days,
        "at_risk": store_days is not None and store_days < min_days,
        "volumes": out_volumes,
        "cameras": cameras,
    }


@dataclass
class _Filesystem:
    """One filesystem under one or more volumes: its space, counted once."""

    total: int
    free: int
    volumes: list[str] = field(default_factory=list)
    reserve: int = 0  # the largest of its volumes' reserves
    caps: int | None = 0  # the sum of their max_bytes; None when one has none

    def add(self, volume: str, reserve: int, max_bytes: int | None) -> None:
        self.volumes.append(volume)
        self.reserve = max(self.reserve, reserve)
        self.caps = None if self.caps is None or max_bytes is None else self.caps + max_bytes

    def usable(self) -> int:
        usable = self.total - self.reserve
        return usable if self.caps is None else min(usable, self.caps)

    def free_above_reserve(self) -> int:
        return max(self.free - self.reserve, 0)


def _days(size: int, rate: float) -> float | None:
    return round(size / rate, 2) if rate > 0 else None
