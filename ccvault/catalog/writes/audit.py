"""The audit chain's head in the catalog: the last record's (seq, hash) and the latest signed
checkpoint, written in the transaction of the action the record describes
(`CatalogWriter.audit`), so catalog and log cannot disagree except by the one append a crash
leaves between the record's fsync and the commit."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

from ccvault.catalog.audit import Head
from ccvault.catalog.audit_checkpoints import Checkpoint, CheckpointKind

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


def read_head(conn: sqlite3.Connection) -> Head | None:
    """None until the first record anchors it (or if the row is gone)."""
    row = conn.execute("SELECT seq, hash, checkpoint FROM audit_head WHERE id = 1").fetchone()
    if row is None or row[0] is None:
        return None
    checkpoint = None
    if row[2]:
        try:
            checkpoint = Checkpoint.parse(json.loads(row[2]))
        except ValueError:
            checkpoint = None
    return Head(row[0], row[1], checkpoint)


def write_head(conn: sqlite3.Connection, head: Head) -> None:
    saved = json.dumps(head.checkpoint.as_json()) if head.checkpoint else None
    conn.execute(
        "INSERT INTO audit_head (id, seq, hash, checkpoint) VALUES (1, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,"
        " checkpoint = excluded.checkpoint",
        (head.seq, head.hash, saved),
    )


class AuditWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def head(self) -> Head | None:
        with self._core.reader() as conn:
            return read_head(conn)

    def checkpoint(self, kind: CheckpointKind, now_ms: int) -> Checkpoint | None:
        """Sign the chain's end now (the daemon: hourly and at stop) if anything is unsigned
        and the files agree with the head; None when there is nothing to sign, or no key."""
        log = self._core.audit_log
        if log is None:
            return None
        with self._core.transaction() as conn:
            head = read_head(conn)
            signed = log.checkpoint(head, kind, now_ms)
            if signed is not None and head is not None:
                write_head(conn, Head(head.seq, head.hash, signed))
            return signed
