"""Nodes: a daemon's start on a shared catalog (claim what is unowned, refuse what is
another's) and its heartbeat. Plain SQL in the subset SQLite and PostgreSQL share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccvault.catalog.nodes import Taken, taken_by_others

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter

_UPSERT = (
    "INSERT INTO nodes (name, url, started_ms, last_seen_ms) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET url = excluded.url, last_seen_ms = excluded.last_seen_ms"
)


class NodeWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def start(
        self, name: str, url: str | None, cameras: list[str], volumes: list[str], now_ms: int
    ) -> list[Taken]:
        """In one transaction: refuse (return, write nothing) when a configured camera or
        volume is another node's; else register this node and claim the rows no node owns
        (those from before nodes existed), audited. The first node to start after the upgrade
        takes them, which is right where one box became the first node."""
        with self._core.transaction() as conn:
            taken = taken_by_others(conn, name, cameras, volumes)
            if taken:
                return taken
            conn.execute(
                "INSERT INTO nodes (name, url, started_ms, last_seen_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET url = excluded.url,"
                " started_ms = excluded.started_ms, last_seen_ms = excluded.last_seen_ms",
                (name, url, now_ms, now_ms),
            )
            claimed: dict[str, object] = {
                table: [
                    r[0]
                    for r in conn.execute(
                        f"SELECT name FROM {table} WHERE node IS NULL ORDER BY name"
                    ).fetchall()
                ]
                for table in ("cameras", "volumes")
            }
            for table in ("cameras", "volumes"):
                conn.execute(f"UPDATE {table} SET node = ? WHERE node IS NULL", (name,))
            # Alerts firing from before nodes are this node's to carry or resolve; export jobs
            # from before nodes have their bundles on this box.
            claimed["alerts"] = conn.execute(
                "UPDATE alerts SET node = ? WHERE node IS NULL AND resolved_ms IS NULL", (name,)
            ).rowcount
            claimed["exports"] = conn.execute(
                "UPDATE exports SET node = ? WHERE node IS NULL", (name,)
            ).rowcount
            if any(claimed.values()):
                self._core.audit("daemon", "node.claim", f"node:{name}", claimed, now_ms)
            return []

    def heartbeat(self, name: str, url: str | None, now_ms: int) -> None:
        """This node is alive (the others' `node_offline` reads it)."""
        with self._core.transaction() as conn:
            conn.execute(_UPSERT, (name, url, now_ms, now_ms))
