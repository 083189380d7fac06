"""The daemon's health snapshot: what alerts, metrics and systemd's STATUS= are computed from.

One snapshot is taken every `[alerts] check_seconds`; the alert conditions, the gauges of
/metrics and the status line are pure functions of it, so they always agree.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ccvault.access.rules import Finding
from ccvault.catalog import queries
from ccvault.catalog.nodes import all_nodes
from ccvault.ingest.backlog import Backlog
from ccvault.recorder.camera import CameraRecorder
from ccvault.storage.volumes import Blocked, Volume, usage

TIMESYNC_DIR = Path("/run/systemd/timesync")


@dataclass(frozen=True)
class VolumeHealth:
    name: str
    state: str  # a volume state (ok, missing, unmounted, read_only, wrong_identity, …)
    reason: str  # why it is not ok ("" when it is)
    available: bool
    total_bytes: int | None
    free_bytes: int | None
    headroom_seconds: float | None  # None: no write rate yet (nothing recorded in 24 h)


@dataclass(frozen=True)
class CameraHealth:
    name: str
    state: str  # a CameraState value
    last_segment_end_ms: int | None
    reconnects_last_hour: int
    backlog_seconds: float  # how far motion analysis is behind (waiting footage)


@dataclass(frozen=True)
class NodeHealth:
    """Another node sharing the catalog, as its heartbeat says."""

    name: str
    up: bool
    last_seen_ms: int


@dataclass(frozen=True)
class Health:
    now_ms: int
    volumes: tuple[VolumeHealth, ...]
    cameras: tuple[CameraHealth, ...]
    write_errors: dict[str, str] = field(default_factory=dict)  # volume -> last write error
    blocked: dict[str, Blocked] = field(default_factory=dict)  # volumes pressure cannot free
    at_risk: dict | None = None  # forecast report when retention is at risk
    catalog_error: str | None = None
    catalog_unreachable: str | None = None  # why PostgreSQL cannot be reached (None: it can)
    spool_backlog: Backlog = field(default_factory=Backlog)  # finished segments not stored yet
    audit_error: str | None = None
    corrupt: dict[str, int] = field(default_factory=dict)  # camera -> corrupt segments, 24 h
    legal_holds_pending: int = 0  # legal hold changes an object store has not taken yet
    clock_synced: bool | None = None  # None: cannot tell (no timesyncd, no chrony), or off
    clock_unknown: str | None = None  # why the clock cannot be checked; None: it can, or off
    access: tuple[Finding, ...] = ()  # what the rooms' rules found (access.rules)
    nodes: tuple[NodeHealth, ...] = ()  # the other nodes sharing the catalog


def volumes_health(volumes: list[Volume], report: dict | None) -> tuple[VolumeHealth, ...]:
    """Each volume's state and space; headroom from the latest forecast (days → seconds)."""
    out = []
    for volume in volumes:
        sizes = usage(volume) if volume.available else None
        days = ((report or {}).get("volumes", {}).get(volume.name) or {}).get("headroom_days")
        out.append(
            VolumeHealth(
                volume.name,
                volume.state,
                volume.reason,
                volume.available,
                sizes[0] if sizes else None,
                sizes[1] if sizes else None,
                days * 86_400 if days is not None and volume.available else None,
            )
        )
    return tuple(out)


def nodes_health(conn: sqlite3.Connection, me: str, now_ms: int) -> tuple[NodeHealth, ...]:
    """The other nodes, up or down by their heartbeats (`NodeRow.up`)."""
    return tuple(
        NodeHealth(n.name, n.up(now_ms), n.last_seen_ms)
        for n in all_nodes(conn).values()
        if n.name != me
    )


def cameras_health(
    recorders: Iterable[CameraRecorder], conn: sqlite3.Connection | None, monotonic_now: float
) -> tuple[CameraHealth, ...]:
    """Each recorder's state, with what the catalog says (nothing when it cannot be read: the
    states alone still tell whether footage is being stored)."""
    last_end = queries.last_segment_ends(conn) if conn is not None else {}
    waiting = queries.waiting_analysis_ms(conn) if conn is not None else {}
    return tuple(
        CameraHealth(
            r.camera.name,
            str(r.state),
            last_end.get(r.camera.name),
            r.reconnects_since(monotonic_now - 3600),
            waiting.get(r.camera.name, 0) / 1000,
        )
        for r in recorders
    )


def clock_synced(mode: str, timesync_dir: Path = TIMESYNC_DIR) -> bool | None:
    """Is the host clock NTP-synchronised? None when nothing here can tell.

    Read without the adjtimex syscall (the unit's filter forbids @clock): systemd-timesyncd
    touches a flag file once synchronised; chrony answers `chronyc tracking`.
    """
    if mode == "off":
        return None
    if mode == "timesyncd" or (mode == "auto" and timesync_dir.is_dir()):
        return (timesync_dir / "synchronized").exists()
    chronyc = shutil.which("chronyc")
    if chronyc is None:
        return False if mode == "chrony" else None
    try:
        out = subprocess.run(
            [chronyc, "-n", "tracking"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    match = re.search(r"^Leap status\s*:\s*(.+)$", out, re.MULTILINE)
    return match is not None and match.group(1).strip() != "Not synchronised"


def clock_unknown(mode: str, synced: bool | None) -> str | None:
    """Why nothing tells whether the clock is synchronised (the `clock_unchecked` alert); None
    when something does, or when `[alerts] clock_sync = "off"` turned the check off on purpose."""
    if mode == "off" or synced is not None:
        return None
    return (
        f"neither systemd-timesyncd ({TIMESYNC_DIR}) nor chrony (chronyc) is on this host, so "
        'nothing tells whether the clock is synchronised; set [alerts] clock_sync = "off" to '
        "accept that"
    )


def status_line(health: Health, firing: dict[str, int]) -> str:
    """systemd's STATUS= (shown by `systemctl status`): cameras, headroom, alerts."""
    cams = [c for c in health.cameras if c.state != "disabled"]
    recording = sum(1 for c in cams if c.state == "recording")
    parts = [f"recording {recording}/{len(cams)} cameras"]
    rooms = [
        f"{v.name} {v.headroom_seconds / 86_400:.1f} d"
        for v in health.volumes
        if v.headroom_seconds is not None
    ]
    parts.append("headroom " + (", ".join(rooms) if rooms else "unknown (no write rate yet)"))
    down = [v.name for v in health.volumes if not v.available]
    if down:
        parts.append("unavailable: " + ", ".join(down))
    if health.catalog_unreachable:
        parts.append(f"catalog unreachable, {health.spool_backlog.segments} segment(s) in spool")
    if firing:
        names = ", ".join(sorted(firing))
        parts.append(f"{sum(firing.values())} alert(s) firing: {names}")
    return "; ".join(parts)
