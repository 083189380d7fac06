"""S3 Object Lock of archived segments, as ccvault set it (`retention.locks`): the retain-until
and legal hold of each object of a locking bucket, and the legal hold changes still to be made
on the store (retried with backoff until it takes them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


@dataclass(frozen=True, slots=True)
class ObjectLock:
    """What a segment's object carries: its retention (mode, until) and its legal hold."""

    segment_id: int
    mode: str  # governance | compliance
    retain_until_ms: int
    legal_hold: bool


class LockWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def record(self, locks: Iterable[ObjectLock]) -> None:
        """The lock each object carries now (set at upload, or read back from the store)."""
        rows = [(k.segment_id, k.mode, k.retain_until_ms, int(k.legal_hold)) for k in locks]
        if not rows:
            return
        with self._core.transaction() as conn:
            conn.executemany(
                "INSERT INTO object_locks (segment_id, mode, retain_until_ms, legal_hold)"
                " SELECT id, ?, ?, ? FROM segments WHERE id = ?"
                " ON CONFLICT (segment_id) DO UPDATE SET mode = excluded.mode,"
                " retain_until_ms = excluded.retain_until_ms, legal_hold = excluded.legal_hold",
                [(mode, until, held, seg) for seg, mode, until, held in rows],
            )

    def want_holds(self, wanted: dict[int, bool], now_ms: int) -> None:
        """Legal hold changes to make (segment id → on): pending until the store takes each,
        so a failed request is retried even if this process ends first."""
        with self._core.transaction() as conn:
            conn.executemany(
                "UPDATE object_locks SET hold_wanted = ?, attempts = 0, next_try_ms = ?"
                " WHERE segment_id = ?",
                [(int(on), now_ms, seg) for seg, on in wanted.items()],
            )

    def hold_set(self, segment_id: int, on: bool) -> None:
        """The store took the legal hold change: nothing pending any more (unless the wanted
        state changed meanwhile: that change stays pending)."""
        with self._core.transaction() as conn:
            conn.execute(
                "UPDATE object_locks SET legal_hold = ? WHERE segment_id = ?", (int(on), segment_id)
            )
            conn.execute(
                "UPDATE object_locks SET hold_wanted = NULL, attempts = 0, next_try_ms = NULL"
                " WHERE segment_id = ? AND hold_wanted = ?",
                (segment_id, int(on)),
            )

    def hold_failed(self, segment_id: int, next_try_ms: int) -> None:
        """The store did not take it (the error is logged): tried again at next_try_ms."""
        with self._core.transaction() as conn:
            conn.execute(
                "UPDATE object_locks SET attempts = attempts + 1, next_try_ms = ?"
                " WHERE segment_id = ? AND hold_wanted IS NOT NULL",
                (next_try_ms, segment_id),
            )
