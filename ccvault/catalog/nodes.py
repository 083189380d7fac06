"""The nodes sharing this catalog: who they are, whether they are up, what each owns.

A node is up while its heartbeat (`nodes.last_seen_ms`, written every `HEARTBEAT_S` by its
daemon) is younger than `DOWN_AFTER_BEATS` beats; its footage is then streamed from its API,
else it shows as unavailable — never as a gap. Plain SQL, the subset SQLite and PostgreSQL share.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ccvault.config.model import Config
from ccvault.config.node import DOWN_AFTER_BEATS, HEARTBEAT_S

DOWN_AFTER_MS = DOWN_AFTER_BEATS * HEARTBEAT_S * 1000


@dataclass(frozen=True, slots=True)
class NodeRow:
    name: str
    url: str | None
    started_ms: int
    last_seen_ms: int

    def up(self, now_ms: int) -> bool:
        """Seen within the last DOWN_AFTER_BEATS heartbeats."""
        return now_ms - self.last_seen_ms <= DOWN_AFTER_MS


def all_nodes(conn: sqlite3.Connection) -> dict[str, NodeRow]:
    rows = conn.execute(
        "SELECT name, url, started_ms, last_seen_ms FROM nodes ORDER BY name"
    ).fetchall()
    return {r[0]: NodeRow(r[0], r[1], r[2], r[3]) for r in rows}


def node_of(conn: sqlite3.Connection, name: str) -> NodeRow | None:
    return all_nodes(conn).get(name)


def owners(conn: sqlite3.Connection, table: str, names: list[str]) -> dict[str, str | None]:
    """name → owning node (None: not claimed yet) of the cameras or volumes named that the
    catalog knows; `table` is one of the two, never text from outside."""
    if table not in ("cameras", "volumes"):
        raise ValueError(table)
    if not names:
        return {}
    marks = ",".join("?" * len(names))
    rows = conn.execute(f"SELECT name, node FROM {table} WHERE name IN ({marks})", names)
    return {r[0]: r[1] for r in rows.fetchall()}


def owned(column: str, node: str | None) -> tuple[str, tuple[str, ...]]:
    """SQL (and its parameter) for "this row is `node`'s": its own, or unclaimed (a row no
    node owns yet: made by a tool that is no node, claimed by the next node to start). A
    process that is no node (None) owns everything. `column` is code, never input."""
    if node is None:
        return "1 = 1", ()
    return f"({column} = ? OR {column} IS NULL)", (node,)


def own_volume_names(conn: sqlite3.Connection, node: str | None) -> set[str]:
    """The volumes whose footage `node` alone records, moves, purges and checks."""
    where, params = owned("node", node)
    return {r[0] for r in conn.execute(f"SELECT name FROM volumes WHERE {where}", params)}


def own_camera_names(conn: sqlite3.Connection, node: str | None) -> set[str]:
    where, params = owned("node", node)
    return {r[0] for r in conn.execute(f"SELECT name FROM cameras WHERE {where}", params)}


def scrub_cursor_key(node: str | None) -> str:
    """Each node re-hashes its own footage, from its own place in the catalog's order."""
    return "scrub_cursor" if node is None else f"scrub_cursor:{node}"


def camera_nodes(conn: sqlite3.Connection) -> dict[str, str | None]:
    """Every catalogued camera and its node."""
    return {r[0]: r[1] for r in conn.execute("SELECT name, node FROM cameras").fetchall()}


def is_known_camera(config: Config, conn: sqlite3.Connection, name: str) -> bool:
    """Configured here, or recorded by another node of this catalog (its footage may be
    listed, played and exported from any node)."""
    if config.camera(name) is not None:
        return True
    owner = camera_nodes(conn).get(name)
    return owner is not None and owner != config.node.name


@dataclass(frozen=True, slots=True)
class Taken:
    """A configured camera or volume the catalog gives to another node."""

    kind: str  # "camera" | "volume"
    index: int  # its position in the config's list
    name: str
    owner: str


def taken_by_others(
    conn: sqlite3.Connection, node: str, cameras: list[str], volumes: list[str]
) -> list[Taken]:
    """The cameras and volumes named (a config's, in its order) that another node owns."""
    out = []
    for kind, table, names in (("camera", "cameras", cameras), ("volume", "volumes", volumes)):
        found = owners(conn, table, names)
        out += [
            Taken(kind, i, n, owner)
            for i, n in enumerate(names)
            if (owner := found.get(n)) is not None and owner != node
        ]
    return out
