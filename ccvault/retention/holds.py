"""Holds: footage kept whatever the policy says, until a dated end or an explicit release.

Every change is an audit record carrying the whole hold, so the holds table can be rebuilt
from the audit log (`ccvault hold rebuild`) if a catalog is restored from an older backup —
from the records a verified chain vouches for, never from a forged line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from itertools import takewhile

from ccvault.catalog.audit_verify import Verifier
from ccvault.catalog.rows import NewHold
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.errors import CheckFailed, NotFound, Refused, UsageError
from ccvault.retention.locks import sync_legal_holds
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
    hold_id = writer.holds.add(
        NewHold(from_ms, to_ms, until_ms, reason.strip(), actor, tuple(sorted(set(cameras)))),
        now_ms,
    )
    sync_legal_holds(writer, config, from_ms, to_ms, now_ms)  # on a locking bucket: legal hold
    return hold_id


def release(
    writer: CatalogWriter,
    hold_id: int,
    reason: str,
    actor: str,
    now_ms: int,
    config: Config | None = None,
) -> None:
    """End a hold; with `config`, objects on locking buckets it alone held lose their legal
    hold (the daemon's API and the CLI pass it)."""
    if not plain_text(reason, "--reason").strip():
        raise UsageError("--reason", "must say why the hold ends")
    if writer.holds.release(hold_id, actor, reason.strip(), now_ms):
        if config is not None:
            with writer.reader() as conn:
                span = conn.execute(
                    "SELECT from_ms, to_ms FROM holds WHERE id = ?", (hold_id,)
                ).fetchone()
            sync_legal_holds(writer, config, span[0], span[1], now_ms)
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
    writer: CatalogWriter,
    verifier: Verifier,
    actor: str,
    now_ms: int,
    dry_run: bool,
    until_seq: int | None = None,
) -> list[dict]:
    """Restore holds (and releases) the audit log has but the catalog lacks, same ids — from
    a verified chain only. The chain is checked first, against the catalog's head and the
    signed checkpoints; records from the first suspect one on (a broken line, a rewritten
    stretch, records nothing vouches for) are never replayed: it refuses, naming that line,
    unless `until_seq` stops before it. Records that never committed are skipped, since their
    actions were rolled back."""
    report = verifier.check()
    end = report.tail_seq if until_seq is None else min(until_seq, report.tail_seq)
    suspect = report.first_suspect()
    if suspect is not None and suspect.suspect_from is not None and suspect.suspect_from <= end:
        before = suspect.suspect_from - 1
        raise CheckFailed(
            "audit log",
            f"{suspect.where()}: {suspect.kind}: {suspect.detail}; nothing was rebuilt "
            + (
                f"(--until-seq {before} rebuilds from the records before it)"
                if before > 0
                else "(no record before it to rebuild from)"
            ),
        )
    with writer.reader() as conn:
        known = {
            r["id"]: r["released_ms"] for r in conn.execute("SELECT id, released_ms FROM holds")
        }
    trusted = (
        r
        for r in takewhile(lambda r: r["seq"] <= end, verifier.log.records(strict=False))
        if r["seq"] not in report.uncommitted
    )
    added, released = _replay(trusted)
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
    if not dry_run:
        details = {"until_seq": until_seq, "verified_to": end, "restored": len(out)}
        writer.record_event(actor, "hold.rebuild", "holds", details, now_ms)
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
