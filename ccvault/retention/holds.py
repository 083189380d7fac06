"""Holds: footage kept whatever the policy says, until a dated end or an explicit release.

Every change is an audit record carrying the whole hold, so the holds table can be rebuilt
from the audit log (`ccvault hold rebuild`) if a catalog is restored from an older backup.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from ccvault.catalog.audit import AuditLog
from ccvault.catalog.rows import NewHold
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.errors import NotFound, Refused, UsageError
from ccvault.text import plain_text
from ccvault.timefmt import ordered, utc_text


def add(
    writer: CatalogWriter,
    config: Config,
    cameras: tuple[str, ...],
    from_ms: int,
    to_ms: int,
    reason: str,
    until_ms: int | None,
    actor: str,
    now_ms: int,
) -> int:
    for name in cameras:
        if config.camera(name) is None:
            raise NotFound(f"camera {name}", "not in the config")
    ordered(from_ms, to_ms, "--from", "--to")
    if until_ms is not None and until_ms <= now_ms:
        raise UsageError("--until", "is already past")
    if not plain_text(reason, "--reason").strip():
        raise UsageError("--reason", "must say why footage is held")
    return writer.holds.add(
        NewHold(from_ms, to_ms, until_ms, reason.strip(), actor, tuple(sorted(set(cameras)))),
        now_ms,
    )


def release(writer: CatalogWriter, hold_id: int, reason: str, actor: str, now_ms: int) -> None:
    if not plain_text(reason, "--reason").strip():
        raise UsageError("--reason", "must say why the hold ends")
    if writer.holds.release(hold_id, actor, reason.strip(), now_ms):
        return
    with writer.reader() as conn:
        exists = conn.execute("SELECT 1 FROM holds WHERE id = ?", (hold_id,)).fetchone()
    if exists is None:
        raise NotFound(f"hold {hold_id}", "no such hold")
    raise Refused(f"hold {hold_id}", "already released")


def listing(conn: sqlite3.Connection, now_ms: int) -> list[dict]:
    cams: dict[int, list[str]] = {}
    for hold_id, camera in conn.execute("SELECT hold_id, camera FROM hold_cameras ORDER BY 2"):
        cams.setdefault(hold_id, []).append(camera)
    out = []
    for r in conn.execute("SELECT * FROM holds ORDER BY id"):
        if r["released_ms"] is not None:
            state = "released"
        elif r["until_ms"] is not None and r["until_ms"] <= now_ms:
            state = "expired"
        else:
            state = "active"
        out.append(
            {
                "id": r["id"],
                "state": state,
                "cameras": cams.get(r["id"], []),
                "from": utc_text(r["from_ms"]),
                "to": utc_text(r["to_ms"]),
                "from_ms": r["from_ms"],
                "to_ms": r["to_ms"],
                "until": utc_text(r["until_ms"]) if r["until_ms"] is not None else None,
                "until_ms": r["until_ms"],
                "reason": r["reason"],
                "actor": r["actor"],
                "created": utc_text(r["created_ms"]),
                "released": utc_text(r["released_ms"]) if r["released_ms"] else None,
                "released_by": r["released_by"],
                "release_reason": r["release_reason"],
            }
        )
    return out


def rebuild(
    writer: CatalogWriter, audit: AuditLog, actor: str, now_ms: int, dry_run: bool
) -> list[dict]:
    """Restore holds (and releases) the audit log has but the catalog lacks, same ids."""
    with writer.reader() as conn:
        known = {
            r["id"]: r["released_ms"] for r in conn.execute("SELECT id, released_ms FROM holds")
        }
    added, released = _replay(audit.records())
    out = []
    for hold_id, hold in sorted(added.items()):
        if hold_id not in known:
            out.append({"hold": hold_id, "restored": "hold"})
            if not dry_run:
                writer.holds.add(hold, now_ms)
        if hold_id in released and known.get(hold_id) is None:
            out.append({"hold": hold_id, "restored": "release"})
            if not dry_run:
                by, reason = released[hold_id]
                writer.holds.release(hold_id, by, reason, now_ms)
    return out


def _replay(records: Iterable[dict]) -> tuple[dict[int, NewHold], dict[int, tuple[str, str]]]:
    added: dict[int, NewHold] = {}
    released: dict[int, tuple[str, str]] = {}
    for rec in records:
        d = rec.get("details", {})
        if rec.get("action") == "hold.add":
            added[d["id"]] = NewHold(
                d["from_ms"],
                d["to_ms"],
                d["until_ms"],
                d["reason"],
                d["actor"],
                tuple(d["cameras"]),
                d["id"],
                d["created_ms"],
            )
        elif rec.get("action") == "hold.release":
            released[d["id"]] = (rec.get("actor", "unknown"), d.get("reason", ""))
    return added, released
