"""Volumes: registered when first seen, re-identified when a disk is replaced."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


class VolumeWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def register(self, name: str, volume_uuid: str, now_ms: int) -> None:
        with self._core.transaction() as conn:
            conn.execute(
                "INSERT INTO volumes (name, uuid, initialised_ms, node) VALUES (?, ?, ?, ?)",
                (name, volume_uuid, now_ms, self._core.node),
            )

    def replace(
        self, name: str, new_uuid: str, now_ms: int, actor: str, details: dict[str, object]
    ) -> int:
        """A new disk stands in for a lost one: its catalogued footage is gone (marked missing),
        and the audit log says who did it, why it was allowed, and how much went missing."""
        with self._core.transaction() as conn:
            old = conn.execute("SELECT uuid FROM volumes WHERE name = ?", (name,)).fetchone()
            conn.execute(
                "UPDATE volumes SET uuid = ?, initialised_ms = ? WHERE name = ?",
                (new_uuid, now_ms, name),
            )
            cur = conn.execute(
                "UPDATE segments SET state = 'missing' WHERE state = 'ok'"
                " AND volume_id = (SELECT id FROM volumes WHERE name = ?)",
                (name,),
            )
            self._core.audit(
                actor,
                "volume.replace",
                f"volume:{name}",
                {
                    **details,
                    "old_uuid": old[0] if old else None,
                    "new_uuid": new_uuid,
                    "marked_missing": cur.rowcount,
                },
                now_ms,
            )
            return cur.rowcount
