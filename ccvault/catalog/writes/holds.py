"""Holds: added and released, each change audited with the whole hold (so `hold rebuild`
can restore it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ccvault.catalog.dialect import sync_identities
from ccvault.catalog.rows import NewHold

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


class HoldWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def add(self, hold: NewHold, now_ms: int) -> int:
        with self._core.transaction() as conn:
            hold_id = _insert(conn, hold, now_ms)
            conn.executemany(
                "INSERT INTO hold_cameras (hold_id, camera) VALUES (?, ?)",
                [(hold_id, c) for c in hold.cameras],
            )
            self._core.audit(
                hold.actor,
                "hold.add",
                f"hold:{hold_id}",
                {**hold.as_json(), "id": hold_id, "created_ms": hold.created_ms or now_ms},
                now_ms,
            )
            return hold_id

    def release(self, hold_id: int, actor: str, reason: str, now_ms: int) -> bool:
        """False when there is no such hold or it was already released."""
        with self._core.transaction() as conn:
            cur = conn.execute(
                "UPDATE holds SET released_ms = ?, released_by = ?, release_reason = ?"
                " WHERE id = ? AND released_ms IS NULL",
                (now_ms, actor, reason, hold_id),
            )
            if cur.rowcount:
                self._core.audit(
                    actor,
                    "hold.release",
                    f"hold:{hold_id}",
                    {"id": hold_id, "reason": reason},
                    now_ms,
                )
            return bool(cur.rowcount)


def _insert(conn: Any, hold: NewHold, now_ms: int) -> int:
    """The new hold's id: its own when it brings one (`hold rebuild` restores ids), else the
    next (the id column left out: PostgreSQL's identity takes no NULL)."""
    values = (hold.from_ms, hold.to_ms, hold.until_ms, hold.reason, hold.actor)
    values += (hold.created_ms or now_ms,)
    columns = "from_ms, to_ms, until_ms, reason, actor, created_ms"
    if hold.id is not None:
        columns, values = f"id, {columns}", (hold.id, *values)
    marks = ", ".join("?" * len(values))
    sql = f"INSERT INTO holds ({columns}) VALUES ({marks}) RETURNING id"
    hold_id = int(conn.execute(sql, values).fetchone()[0])
    if hold.id is not None:
        sync_identities(conn, "holds")  # the next new hold numbers past this one
    return hold_id
