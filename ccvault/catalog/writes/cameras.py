"""Cameras: the row every segment refers to, and the recorder state `status` shows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


class CameraWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def ensure(self, names: Iterable[str]) -> None:
        with self._core.transaction() as conn:
            for name in names:
                camera_row_id(conn, name, self._core.node)

    def set_state(self, name: str, state: str, since_ms: int, reason: str) -> None:
        with self._core.transaction() as conn:
            camera_id = camera_row_id(conn, name, self._core.node)
            conn.execute(
                "UPDATE cameras SET state = ?, state_since_ms = ?, state_reason = ? WHERE id = ?",
                (state, since_ms, reason, camera_id),
            )


def camera_row_id(conn: sqlite3.Connection, name: str, node: str | None) -> int:
    """The camera's row id; a camera first seen is made `node`'s."""
    row = conn.execute("SELECT id FROM cameras WHERE name = ?", (name,)).fetchone()
    if row:
        return row[0]
    return conn.execute(
        "INSERT INTO cameras (name, node) VALUES (?, ?) RETURNING id", (name, node)
    ).fetchone()[0]
