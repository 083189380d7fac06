"""Evidence export jobs and their pins: a job exists, runs and ends in single transactions
with its audit records."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


class ExportWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def add(
        self,
        camera: str,
        from_ms: int,
        to_ms: int,
        reason: str,
        actor: str,
        bundle_dir: Callable[[int], str],
        details: dict[str, Any],
        now_ms: int,
        visit: tuple[int, tuple[str, ...]] | None = None,
    ) -> int:
        """Record an export job (queued) and pin its range, in one transaction with the
        `export.start` record: footage is protected from the moment the job exists.
        bundle_dir maps the new id to the bundle's directory (it may refuse by raising).
        `visit` (its id, its room's cameras): a visit's export, every camera pinned."""
        visit_id, cameras = visit if visit is not None else (None, (camera,))
        with self._core.transaction() as conn:
            export_id = conn.execute(
                "INSERT INTO exports (camera, from_ms, to_ms, reason, actor, dir, created_ms,"
                " visit_id, cameras, node) VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?) RETURNING id",
                (
                    camera,
                    from_ms,
                    to_ms,
                    reason,
                    actor,
                    now_ms,
                    visit_id,
                    None if visit is None else json.dumps(list(cameras)),
                    # Whose job it is: the bundle goes to this node's disks, so only it runs it.
                    self._core.node,
                ),
            ).fetchone()[0]
            directory = bundle_dir(export_id)
            pin_id = None
            for pinned in cameras:
                pin = conn.execute(
                    "INSERT INTO export_pins (camera, from_ms, to_ms, until_ms, reason,"
                    " created_ms, export_id) VALUES (?, ?, ?, NULL, ?, ?, ?) RETURNING id",
                    (pinned, from_ms, to_ms, f"export {export_id}", now_ms, export_id),
                ).fetchone()[0]
                pin_id = pin_id or pin
            conn.execute(
                "UPDATE exports SET dir = ?, pin_id = ? WHERE id = ?",
                (directory, pin_id, export_id),
            )
            self._core.audit(
                actor,
                "export.start",
                f"export:{export_id}",
                {
                    "id": export_id,
                    "camera": camera,
                    "from_ms": from_ms,
                    "to_ms": to_ms,
                    "reason": reason,
                    "dir": directory,
                    **details,
                },
                now_ms,
            )
            return export_id

    def start(self, export_id: int) -> bool:
        """queued/running → running, progress 0 (a resumed job starts from scratch); False
        when the job has finished meanwhile (another process ran it)."""
        with self._core.transaction() as conn:
            cur = conn.execute(
                "UPDATE exports SET state = 'running', progress = 0, error = NULL"
                " WHERE id = ? AND state IN ('queued', 'running')",
                (export_id,),
            )
            return bool(cur.rowcount)

    def progress(self, export_id: int, progress: float) -> None:
        with self._core.transaction() as conn:
            conn.execute(
                "UPDATE exports SET progress = ? WHERE id = ? AND state = 'running'",
                (min(max(progress, 0.0), 1.0), export_id),
            )

    def finish(
        self,
        export_id: int,
        ok: bool,
        error: str | None,
        actor: str,
        details: dict[str, Any],
        now_ms: int,
    ) -> None:
        """done/failed, its pin released, and `export.done`/`export.failed` — one transaction,
        so a job is never finished with its footage still pinned, or unpinned while running."""
        with self._core.transaction() as conn:
            row = conn.execute("SELECT pin_id FROM exports WHERE id = ?", (export_id,)).fetchone()
            conn.execute(
                "UPDATE exports SET state = ?, error = ?, finished_ms = ?, pin_id = NULL,"
                " progress = CASE WHEN ? THEN 1 ELSE progress END, manifest_sha256 = ?"
                " WHERE id = ?",
                (
                    "done" if ok else "failed",
                    error,
                    now_ms,
                    ok,
                    details.get("manifest_sha256") if ok else None,
                    export_id,
                ),
            )
            if row and row["pin_id"] is not None:
                conn.execute(
                    "DELETE FROM export_pins WHERE id = ? OR export_id = ?",
                    (row["pin_id"], export_id),
                )
            self._core.audit(
                actor,
                "export.done" if ok else "export.failed",
                f"export:{export_id}",
                {"id": export_id, **details, **({"error": error} if error else {})},
                now_ms,
            )

    def checked(
        self, export_id: int, problem: str | None, actor: str, details: dict[str, Any], now_ms: int
    ) -> None:
        """A full check of the bundle (`ccvault exports --verify`): its result kept on the job
        and `export.verify` audited, in one transaction."""
        with self._core.transaction() as conn:
            conn.execute(
                "UPDATE exports SET verified_ms = ?, verify_problem = ? WHERE id = ?",
                (now_ms, problem, export_id),
            )
            self._core.audit(
                actor,
                "export.verify",
                f"export:{export_id}",
                {"id": export_id, "ok": problem is None, "problem": problem, **details},
                now_ms,
            )
