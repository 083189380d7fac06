"""The only code that writes the catalog, for the daemon and CLI commands alike.

One connection, one discipline: each write is one short `BEGIN IMMEDIATE` transaction under a
process-local lock, so threads never interleave and other processes wait (busy timeout)
instead of failing; audit records are appended inside that transaction, so the hash chain
never forks. The writes themselves are grouped by area (`writer.segments.add(...)`,
`writer.holds.add(...)`, modules in `catalog/writes/`), all through this object's
`transaction()`. Callers hand in typed rows; the invariant "a row is committed only after its
file is durable" is the caller's (the segment store), and this module never touches files.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccvault.catalog import db
from ccvault.catalog.schema import migrate
from ccvault.catalog.writes.access import AccessWrites
from ccvault.catalog.writes.alerts import AlertWrites
from ccvault.catalog.writes.cameras import CameraWrites
from ccvault.catalog.writes.exports import ExportWrites
from ccvault.catalog.writes.holds import HoldWrites
from ccvault.catalog.writes.intents import IntentWrites
from ccvault.catalog.writes.motion import MotionWrites
from ccvault.catalog.writes.segments import SegmentWrites
from ccvault.catalog.writes.users import UserWrites
from ccvault.catalog.writes.volumes import VolumeWrites
from ccvault.errors import Busy

if TYPE_CHECKING:
    from ccvault.catalog.audit import AuditLog


class CatalogWriter:
    def __init__(self, path: Path, audit: AuditLog | None = None) -> None:
        self.path = path
        self.audit_log = audit
        self._conn = db.connect(path)
        self._lock = threading.Lock()
        self.last_error: str | None = None
        try:
            migrate(self._conn)
        except sqlite3.OperationalError as exc:
            raise Busy(str(path), f"catalog is locked ({exc})") from None
        self.catalog_id = self._ensure_catalog_id()
        # One object per area, all writing through this one connection and transaction.
        self.cameras = CameraWrites(self)
        self.volumes = VolumeWrites(self)
        self.segments = SegmentWrites(self)
        self.motion = MotionWrites(self)
        self.intents = IntentWrites(self)
        self.holds = HoldWrites(self)
        self.users = UserWrites(self)
        self.exports = ExportWrites(self)
        self.alerts = AlertWrites(self)
        self.access = AccessWrites(self)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write; `last_error` says whether the latest one failed in SQLite (the
        catalog_error alert), and clears with the next that commits."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                self.last_error = f"catalog is locked ({exc})"
                raise Busy(str(self.path), self.last_error) from None
            try:
                yield self._conn
            except BaseException as exc:
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                    self.last_error = str(exc)
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.last_error = str(exc)
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self.last_error = None

    def audit(
        self, actor: str, action: str, obj: str, details: dict[str, Any], now_ms: int
    ) -> None:
        """Append an audit record; call inside `transaction()`, whose SQLite write lock is what
        serialises appends from the daemon and CLI commands so the hash chain never forks."""
        if not self._conn.in_transaction:
            raise RuntimeError("audit records are appended inside a catalog transaction")
        if self.audit_log is not None:
            self.audit_log.append(
                actor=actor, action=action, obj=obj, details=details, now_ms=now_ms
            )

    def reader(self) -> AbstractContextManager[sqlite3.Connection]:
        """A separate connection for reads (closed on exit): readers never take the writer's
        lock."""
        return closing(db.connect(self.path, readonly=True))

    def _ensure_catalog_id(self) -> str:
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'catalog_id'").fetchone()
            if row:
                return row[0]
            new_id = str(uuid.uuid4())
            conn.execute("INSERT INTO meta (key, value) VALUES ('catalog_id', ?)", (new_id,))
            return new_id

    def record_event(
        self, actor: str, action: str, obj: str, details: dict[str, Any], now_ms: int
    ) -> None:
        """An audit record on its own (daemon start, reconcile repair)."""
        with self.transaction():
            self.audit(actor, action, obj, details, now_ms)
