"""The status object shared by `ccvault status --json` and `GET /api/status`.

Reads only: a CLI asking for status must never initialise a volume or change the catalog.
"""

from __future__ import annotations

import sqlite3

from ccvault.catalog import queries
from ccvault.catalog.nodes import all_nodes
from ccvault.config.model import Config
from ccvault.ingest.backlog import Backlog
from ccvault.ingest.spool import spool_backlog
from ccvault.retention import forecast
from ccvault.storage.volumes import Volume, check, usage
from ccvault.text import days_text, size_text
from ccvault.timefmt import utc_text, utc_text_or_none

DAY_MS = 86_400_000


def _volumes_now(config: Config, conn: sqlite3.Connection) -> list[Volume]:
    known = queries.volume_rows(conn)
    catalog_id = queries.catalog_id(conn)
    return [check(v, known.get(v.name), catalog_id) for v in config.storage.volumes]


def build(config: Config, conn: sqlite3.Connection, now_ms: int, daemon_running: bool) -> dict:
    cameras = []
    for cam in config.cameras:
        row = queries.camera(conn, cam.name)
        activity = queries.camera_activity(conn, cam.name, now_ms - DAY_MS)
        backlog = queries.analysis_backlog(conn, cam.name)
        state, since = camera_state(cam.enabled, row, daemon_running, activity.last_end_ms)
        cameras.append(
            {
                "name": cam.name,
                "state": state,
                "since": utc_text_or_none(since),
                "last_segment_end": (utc_text_or_none(activity.last_end_ms)),
                "segments_24h": activity.segments,
                "bytes_24h": activity.bytes,
                "motion_backlog_segments": backlog[0],
                "motion_backlog_seconds": round(backlog[1] / 1000, 1),
            }
        )
    footage = queries.footage_bytes(conn)
    volumes = []
    checked = _volumes_now(config, conn)  # reads each identity file: once per status
    for volume in checked:
        sizes = usage(volume) if volume.available else None
        volumes.append(
            {
                "name": volume.name,
                "path": volume.where,
                "role": volume.role,
                "state": volume.state,
                "reason": volume.reason or None,
                "total_bytes": sizes[0] if sizes else None,
                "free_bytes": sizes[1] if sizes else None,
                "footage_bytes": footage.get(volume.name, 0),
            }
        )
    report = forecast.build(conn, config, checked, now_ms)
    for cam in cameras:
        cam["forecast"] = report["cameras"][cam["name"]]
    for vol in volumes:
        vol["forecast"] = report["volumes"].get(vol["name"])
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'thin%'").fetchall())
    retention = {
        k: report[k] for k in ("bytes_per_day", "days", "headroom_days", "min_days", "at_risk")
    }
    retention["thinned_segments"] = int(meta.get("thinned_segments", 0))
    retention["thin_saved_bytes"] = int(meta.get("thin_saved_bytes", 0))
    retention["active_holds"] = conn.execute(
        "SELECT COUNT(*) FROM holds WHERE released_ms IS NULL"
        " AND (until_ms IS NULL OR until_ms > ?)",
        (now_ms,),
    ).fetchone()[0]
    retention["legal_holds_pending"] = queries.legal_holds_pending(conn)
    _in_words(cameras, volumes, retention)
    return {
        "daemon": {"running": daemon_running},
        "catalog": {"reachable": True, "error": None},
        "spool_backlog": backlog_json(spool_backlog(config)),
        "node": config.node.name,
        "nodes": [
            {
                "name": n.name,
                "url": n.url,
                "up": n.up(now_ms),
                "started": utc_text(n.started_ms),
                "last_seen": utc_text(n.last_seen_ms),
            }
            for n in all_nodes(conn).values()
        ],
        "cameras": cameras,
        "volumes": volumes,
        "retention": retention,
    }


def _in_words(cameras: list[dict], volumes: list[dict], retention: dict) -> None:
    """Beside each raw byte field, its text for people (`size_text`), and the days the
    storage holds in a sentence: the CLI, the API and the web page show these, so all three
    say the same."""
    for cam in cameras:
        cam["bytes_24h_text"] = size_text(cam["bytes_24h"])
        cam["forecast"]["bytes_per_day_text"] = size_text(cam["forecast"]["bytes_per_day"])
    for vol in volumes:
        for key in ("total", "free", "footage"):
            vol[f"{key}_text"] = size_text(vol[f"{key}_bytes"])
    retention["bytes_per_day_text"] = size_text(retention["bytes_per_day"])
    retention["thin_saved_text"] = size_text(retention["thin_saved_bytes"])
    retention["summary"] = retention_summary(retention)


def retention_summary(r: dict) -> str:
    """How many days the storage holds at the current rate, against what the policy must
    keep, in words: no bare "45.33" beside a "7" to be read as the wrong one."""
    if r["days"] is None:
        return (
            "No footage was recorded in the last 24 hours, so there is no rate to say how "
            "many days the storage holds."
        )
    promise = days_text(r["min_days"]).removeprefix("about ")
    if not r["min_days"]:
        verdict = "the policy promises no minimum"
    elif r["at_risk"]:
        verdict = (
            f"NOT ENOUGH for the {promise} the policy must keep (under disk pressure, "
            "younger footage will be deleted)"
        )
    else:
        verdict = f"enough for the {promise} the policy must keep"
    return (
        f"At the current rate of {size_text(r['bytes_per_day'])} a day, the storage holds "
        f"{days_text(r['days'])} of footage: {verdict}. Free space and deletable footage "
        f"last {days_text(r['headroom_days'])} before older footage must make room."
    )


def without_catalog(config: Config, daemon_running: bool, problem: str) -> dict:
    """What can be said while the catalog is out of reach: that, and what waits in the spool."""
    return {
        "daemon": {"running": daemon_running},
        "node": config.node.name,  # which node this is; the others are in the catalog
        "catalog": {"reachable": False, "error": problem},
        "spool_backlog": backlog_json(spool_backlog(config)),
    }


def backlog_json(backlog: Backlog) -> dict:
    oldest = backlog.oldest_ms
    return {
        "segments": backlog.segments,
        "oldest_end": utc_text_or_none(oldest),
        "oldest_end_ms": oldest,
    }


def camera_state(
    enabled: bool, row: queries.CameraRow | None, daemon_running: bool, last_end_ms: int | None
) -> tuple[str, int | None]:
    if not enabled:
        return "disabled", row.state_since_ms if row and row.state == "disabled" else None
    if daemon_running and row is not None:
        return row.state, row.state_since_ms
    # Nothing records without the daemon: the truthful state is offline since the last footage.
    return "offline", last_end_ms
