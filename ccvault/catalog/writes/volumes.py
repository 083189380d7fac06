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
                "INSERT INTO volumes (name, uuid, initialised_ms) VALUES (?, ?, ?)",
                (name, volume_uuid, now_ms),
            )

    def replace(self, name: str, new_uuid: str, now_ms: int) -> int:
        """A new disk stands in for a lost one: its catalogued footage is gone (marked missing)."""
        with self._core.transaction() as conn:
            conn.execute(
                "UPDATE volumes SET uuid = ?, initialised_ms = ? WHERE name = ?",
                (new_uuid, now_ms, name),
            )
            cur = conn.execute(
                "UPDATE segments SET state = 'missing' WHERE state = 'ok'"
                " AND volume_id = (SELECT id FROM volumes WHERE name = ?)",
                (name,),
            )
            return cur.rowcount
