"""Footage of every node, read on any node: other nodes' cameras, and which segments cannot
be played from here now (`unavailable (node b down since …)`, never shown as a gap)."""

from __future__ import annotations

import sqlite3

from ccvault.catalog import queries
from ccvault.catalog.nodes import all_nodes, camera_nodes
from ccvault.config.model import Config
from ccvault.storage.peers import reasons
from ccvault.views.models import CameraOut, SegmentOut
from ccvault.views.search import footage_ends


def mark(
    config: Config, conn: sqlite3.Connection, found: list[SegmentOut], now_ms: int
) -> list[SegmentOut]:
    """Each segment with why it cannot be played from here (`unavailable`), if so."""
    why = reasons(conn, config.node.name, now_ms, config.tz)
    return [
        s.model_copy(update={"unavailable": why[s.node]}) if s.node in why else s for s in found
    ]


def other_cameras(config: Config, conn: sqlite3.Connection, now_ms: int) -> list[CameraOut]:
    """The cameras other nodes record, with their state as their node last wrote it; while
    their node is down, `offline` with the reason (`unavailable`)."""
    why = reasons(conn, config.node.name, now_ms, config.tz)
    up = {n.name for n in all_nodes(conn).values() if n.up(now_ms)}
    out = []
    for name, node in sorted(camera_nodes(conn).items()):
        if node is None or node == config.node.name or config.camera(name) is not None:
            continue
        row = queries.camera(conn, name)
        assert row is not None
        first, last = footage_ends(conn, row)  # two index ends, whatever the history
        state, since = (row.state, row.state_since_ms) if node in up else ("offline", None)
        out.append(
            CameraOut.of(
                name, True, state, since, (first, last), node=node, unavailable=why.get(node)
            )
        )
    return out
