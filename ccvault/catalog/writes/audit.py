"""The audit chains' heads in the catalog, one per node (each node's file is its own chain):
the last record's (seq, hash) and the latest signed checkpoint, written in the transaction of
the action the record describes (`CatalogWriter.audit`), so catalog and log cannot disagree
except by the one append a crash leaves between the record's fsync and the commit."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

from ccvault.catalog.audit import Head
from ccvault.catalog.audit_checkpoints import Checkpoint, CheckpointKind

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


# The head of a writer that is no node (a tool, a bench), and the one from before nodes.
NO_NODE = ""
_ROW = "SELECT seq, hash, checkpoint FROM audit_heads WHERE node = ?"
_ADOPTABLE = "node = '' AND NOT EXISTS (SELECT 1 FROM audit_heads WHERE node <> '')"


def read_head(conn: sqlite3.Connection, node: str | None) -> Head | None:
    """`node`'s head (None: a writer that is no node); None until its first record anchors
    it. A node without one yet reads the head from before nodes while no node has adopted it
    (`write_head`): the first node's file holds that chain, and is checked against it."""
    row = conn.execute(_ROW, (node or NO_NODE,)).fetchone()
    if row is None and node:
        row = conn.execute(
            f"SELECT seq, hash, checkpoint FROM audit_heads WHERE {_ADOPTABLE}"
        ).fetchone()
    if row is None:
        return None
    checkpoint = None
    if row[2]:
        try:
            checkpoint = Checkpoint.parse(json.loads(row[2]))
        except ValueError:
            checkpoint = None
    return Head(row[0], row[1], checkpoint)


def write_head(conn: sqlite3.Connection, head: Head, node: str | None) -> None:
    """Commit `node`'s head. The first node ever to write one adopts the head from before
    nodes (renamed to it: no other node can take it after), as `read_head` showed it."""
    key = node or NO_NODE
    if node:
        conn.execute(f"UPDATE audit_heads SET node = ? WHERE {_ADOPTABLE}", (key,))
    saved = json.dumps(head.checkpoint.as_json()) if head.checkpoint else None
    conn.execute(
        "INSERT INTO audit_heads (node, seq, hash, checkpoint) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (node) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,"
        " checkpoint = excluded.checkpoint",
        (key, head.seq, head.hash, saved),
    )


class AuditWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def head(self) -> Head | None:
        with self._core.reader() as conn:
            return read_head(conn, self._core.node)

    def checkpoint(self, kind: CheckpointKind, now_ms: int) -> Checkpoint | None:
        """Sign the chain's end now (the daemon: hourly and at stop) if anything is unsigned
        and the files agree with the head; None when there is nothing to sign, or no key."""
        log = self._core.audit_log
        if log is None:
            return None
        with self._core.transaction() as conn:
            head = read_head(conn, self._core.node)
            signed = log.checkpoint(head, kind, now_ms)
            if signed is not None and head is not None:
                write_head(conn, Head(head.seq, head.hash, signed), self._core.node)
            return signed
