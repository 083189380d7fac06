"""The only code that writes the catalog, for the daemon and CLI commands alike.

One connection, one discipline: each write is one short `BEGIN IMMEDIATE` transaction under a
process-local lock, so threads never interleave and other processes wait (busy timeout)
instead of failing; audit records are appended inside that transaction, so the hash chain
never forks. The writes themselves are grouped by area (`writer.segments.add(...)`,
`writer.holds.add(...)`, modules in `catalog/writes/`), all through this object's
`transaction()`. Callers hand in typed rows; the invariant "a row is committed only after its
file is durable" is the caller's (the segment store), and this module never touches files.

The file under the connection is checked before every transaction and every reader: a catalog
deleted or replaced under a running process would otherwise take writes that "succeed" into a
file nobody can open again. The writer compares the path's (device, inode) — and its WAL's and
shared-memory index's — with those it opened, and the catalog id in `meta` with its own (a stat
and an indexed read, microseconds); on a mismatch it raises `CatalogGone` and writes nothing
more until `reopen()` finds this very catalog at the path again (restored from a backup).

On PostgreSQL the same discipline holds with the engine's means: each transaction is `BEGIN`
plus a transaction-scoped advisory lock on one fixed key (`dialect.begin_write`), the exact
analogue of `BEGIN IMMEDIATE` — site-wide writes from every node are serialised, so two nodes
adding holds at once never lose one and the audit chain's head never forks. There is no file
to stat; the catalog id in `meta` is still checked before every transaction and reader.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccvault.catalog import db
from ccvault.catalog.dialect import Backend, backend_of, begin_write
from ccvault.catalog.schema import migrate
from ccvault.catalog.writes.access import AccessWrites
from ccvault.catalog.writes.alerts import AlertWrites
from ccvault.catalog.writes.audit import AuditWrites, read_head, write_head
from ccvault.catalog.writes.cameras import CameraWrites
from ccvault.catalog.writes.exports import ExportWrites
from ccvault.catalog.writes.holds import HoldWrites
from ccvault.catalog.writes.intents import IntentWrites
from ccvault.catalog.writes.locks import LockWrites
from ccvault.catalog.writes.motion import MotionWrites
from ccvault.catalog.writes.nodes import NodeWrites
from ccvault.catalog.writes.segments import SegmentWrites
from ccvault.catalog.writes.users import UserWrites
from ccvault.catalog.writes.volumes import VolumeWrites
from ccvault.errors import Busy
from ccvault.host.durable import make_dirs

if TYPE_CHECKING:
    from ccvault.catalog.audit import AuditLog
    from ccvault.catalog.audit_checkpoints import CheckpointKind


FileIds = tuple[tuple[int, int] | None, ...]  # (device, inode) of the catalog, -wal, -shm
_COMPANIONS = ("", "-wal", "-shm")
_CATALOG_ID = "SELECT value FROM meta WHERE key = 'catalog_id'"


class CatalogGone(Busy):
    """The catalog this process opened cannot take writes now: no longer at its path (deleted,
    replaced, or another catalog copied over it), or — `CatalogUnreachable` — not reachable.
    Nothing is written until it is back; footage waits in the spool. Busy: try again later."""


class CatalogUnreachable(CatalogGone):
    """PostgreSQL cannot be reached (stopped, refusing connections, the connection lost): the
    write failed and nothing of it committed; the next one connects again."""


class CommitUnknown(CatalogUnreachable):
    """The connection was lost while COMMIT was on its way: the transaction may have committed
    or not, and nobody can say which. A caller that placed files for it keeps them; its retry
    must be idempotent (a segment's natural key: `SegmentWrites.add`)."""


class CatalogWriter:
    def __init__(
        self,
        path: db.Target,
        audit: AuditLog | None = None,
        lock_base: Path | None = None,
        node: str | None = None,
    ) -> None:
        self.path = path  # a file (SQLite) or a PgCatalog; str() of either names it
        # The node this process is (`[node] name`): rows it creates are its own. None: a tool
        # or bench that is no node (its rows are claimed by the next node to start).
        self.node = node
        if audit is not None and node is not None and audit.node != node:
            # Its records would move another chain's head (`audit`): never a silent mix-up.
            raise ValueError(f"node {node!r}'s writer was given node {audit.node!r}'s audit log")
        self.lock_base = _lock_base(path, lock_base)
        # A lock directory made for this writer alone (PostgreSQL, no state_dir): removed at
        # close, so tools and benches leave no /tmp/ccvault-locks-* behind.
        self._own_locks = (
            self.lock_base.parent if lock_base is None and not isinstance(path, Path) else None
        )
        self.audit_log = audit
        try:
            self._conn = db.connect(path)
        except db.OperationalError as exc:
            if isinstance(path, Path):
                raise
            raise CatalogUnreachable("catalog", f"unreachable: {str(exc).strip()}") from None
        self.backend: Backend = backend_of(self._conn)
        self._lock = threading.Lock()
        self._local = threading.local()  # each thread's read-only connection
        self._readers: list[db.Connection] = []
        self._readers_lock = threading.Lock()
        self.last_error: str | None = None
        self.gone: str | None = None  # why the catalog opened is not at the path any more
        self.unreachable: str | None = None  # PostgreSQL: why the last try to reach it failed
        self.generation = 0  # counts reopens: a connection kept from before reads a stale file
        self.catalog_id = ""  # known after the first transaction below
        self._files: FileIds = self._file_ids()
        try:
            migrate(self._conn)
        except db.OperationalError as exc:
            raise Busy(str(path), f"catalog is locked ({exc})") from None
        self.catalog_id = self._ensure_catalog_id()
        self._files = self._file_ids()  # the WAL and its index exist from the first write
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
        self.audit_chain = AuditWrites(self)
        self.access = AccessWrites(self)
        self.nodes = NodeWrites(self)
        self.locks = LockWrites(self)

    def close(self) -> None:
        self._conn.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        if self._own_locks is not None:
            shutil.rmtree(self._own_locks, ignore_errors=True)

    def _pg_reader(self) -> db.Connection:
        """This thread's read-only connection, checked (the catalog id: one round trip)."""
        conn = getattr(self._local, "reader", None)
        if conn is not None and not conn.closed:
            try:
                self._check_id(conn)
                return conn
            except db.OperationalError:
                conn.close()  # dropped by the server (a restart): open a new one
        try:
            conn = self._local.reader = db.connect(self.path, readonly=True)
        except db.OperationalError as exc:  # the server is out of reach
            raise self._unreachable(exc, CatalogUnreachable) from None
        with self._readers_lock:
            self._readers.append(conn)
        self._check_id(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[db.Connection]:
        """One write; `last_error` says whether the latest one failed in SQLite (the
        catalog_error alert), and clears with the next that commits. A PostgreSQL connection
        lost on the way is `CatalogUnreachable` — `CommitUnknown` when COMMIT was sent."""
        with self._lock:
            self._check_files()
            self._reconnect_if_lost()
            try:
                begin_write(self._conn, self.backend)
            except db.OperationalError as exc:
                if self.backend is Backend.POSTGRES:
                    raise self._unreachable(exc, CatalogUnreachable) from None
                self.last_error = f"catalog is locked ({exc})"
                raise Busy(str(self.path), self.last_error) from None
            try:
                self._check_id(self._conn)
                yield self._conn
            except BaseException as exc:
                if isinstance(exc, db.Error) and not isinstance(exc, db.IntegrityError):
                    self.last_error = str(exc)
                self._rollback()
                if self._connection_lost(exc):  # the server ended the transaction unfinished
                    raise self._unreachable(exc, CatalogUnreachable) from exc
                raise
            try:
                self._conn.execute("COMMIT")
            except db.Error as exc:
                if self._connection_lost(exc):
                    raise self._unreachable(exc, CommitUnknown) from exc
                self.last_error = str(exc)
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self.last_error = self.unreachable = None

    def audit(
        self,
        actor: str,
        action: str,
        obj: str,
        details: dict[str, Any],
        now_ms: int,
        checkpoint: CheckpointKind | None = None,
    ) -> None:
        """Append an audit record; call inside `transaction()`, whose SQLite write lock is what
        serialises appends from the daemon and CLI commands so the hash chain never forks. The
        chain's new head commits with the transaction: the record is the last write before
        the commit, so a crash in between leaves one record past the head, which the next
        append marks as not committed (`audit.uncommitted`)."""
        if not self._conn.in_transaction:
            raise RuntimeError("audit records are appended inside a catalog transaction")
        if self.audit_log is not None:
            # The head is the chain's, and the chain is the file's: a tool writing without a
            # node still continues the node's chain its config names (never a second head).
            head = read_head(self._conn, self.audit_log.node)
            appended = self.audit_log.append(
                actor=actor,
                action=action,
                obj=obj,
                details=details,
                now_ms=now_ms,
                head=head,
                checkpoint=checkpoint,
            )
            write_head(self._conn, appended.head(head), self.audit_log.node)

    def _rollback(self) -> None:
        """Roll back, unless the connection is lost (the server ended the transaction)."""
        if not getattr(self._conn, "closed", False):
            self._conn.execute("ROLLBACK")

    def _reconnect_if_lost(self) -> None:
        """PostgreSQL: a connection the server dropped (a restart, a network cut) is opened
        again before the next transaction; the write that met the loss has failed already."""
        if self.backend is Backend.POSTGRES and self._conn.closed:
            try:
                self._conn = db.connect(self.path)
            except db.OperationalError as exc:
                raise self._unreachable(exc, CatalogUnreachable) from None

    def _connection_lost(self, exc: BaseException) -> bool:
        """PostgreSQL: did this error come from the connection dying (not from the SQL)?"""
        return (
            self.backend is Backend.POSTGRES
            and isinstance(exc, db.OperationalError)
            and bool(getattr(self._conn, "closed", False))
        )

    def _unreachable(self, exc: BaseException, kind: type[CatalogUnreachable]) -> Busy:
        """Note the outage (the catalog_unreachable alert) and the error to raise for it."""
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        what = "outcome unknown: connection lost during COMMIT; " if kind is CommitUnknown else ""
        self.unreachable = self.last_error = f"catalog unreachable ({what}{problem})"
        return kind(str(self.path), self.unreachable)

    def reader(self) -> AbstractContextManager[db.Connection]:
        """This thread's read-only connection, kept across calls (readers never take the
        writer's lock); a transaction a caller left open in it is rolled back on exit. It reads
        the catalog the writer opened, or raises `CatalogGone`.

        Kept, because opening one per call showed: SQLite's connect and WAL pragma were ~4 %
        of the daemon's time at 64 cameras (the scrub and ingest read per segment), and a
        PostgreSQL connection costs a TCP and SCRAM handshake. Read-only and in autocommit,
        each query sees the latest commit. A SQLite one is opened again after `reopen` (one
        kept on a replaced file would go on answering from it); a PostgreSQL one the server
        dropped is opened again here, before the caller's first statement."""
        self._check_files()
        conn = self._pg_reader() if self.backend is Backend.POSTGRES else self._sqlite_reader()
        return self._lent(conn)

    def _sqlite_reader(self) -> db.Connection:
        """This thread's connection to the file opened now (`generation`), checked (its id)."""
        kept = getattr(self._local, "sqlite", None)
        if kept is not None and kept[0] == self.generation:
            conn = kept[1]
        else:
            if kept is not None:
                self._forget_reader(kept[1])
            try:
                conn = db.connect(self.path, readonly=True)
            except db.OperationalError:
                self._check_files()  # deleted meanwhile: say so
                raise
            self._local.sqlite = (self.generation, conn)
            with self._readers_lock:
                self._readers.append(conn)
        self._check_id(conn)
        return conn

    @contextmanager
    def _lent(self, conn: db.Connection) -> Iterator[db.Connection]:
        """A kept connection goes back as it came: a read transaction left open would pin its
        snapshot for the thread's next reader (and, in SQLite, the WAL's growth). Only the
        outermost of nested `reader()` blocks ends one."""
        depth = getattr(self._local, "lent", 0)
        self._local.lent = depth + 1
        try:
            yield conn
        finally:
            self._local.lent = depth
            if not depth and conn.in_transaction:
                with contextlib.suppress(db.Error):  # a broken one is opened again next time
                    conn.execute("ROLLBACK")

    def _forget_reader(self, conn: db.Connection) -> None:
        conn.close()
        with self._readers_lock:
            if conn in self._readers:
                self._readers.remove(conn)

    def check(self) -> None:
        """Raise `CatalogGone` unless the catalog opened is still at its path (a stat per file,
        no lock): callers about to act on files for a row, or to answer from a connection they
        keep, check first. While PostgreSQL is known to be out of reach it is asked again
        first (`verify`), and `CatalogUnreachable` raised while it cannot be reached: nothing
        is placed for a row that cannot commit."""
        self._check_files()
        if self.unreachable is not None:
            self.verify()
            if self.unreachable is not None:
                raise CatalogUnreachable(str(self.path), self.unreachable)

    def met(self, exc: BaseException) -> bool:
        """Did an error a reader met come from PostgreSQL going away? Then it is noted (the
        catalog_unreachable alert) and True; any other error is the caller's."""
        if self.backend is not Backend.POSTGRES or not isinstance(exc, db.OperationalError):
            return False
        self._unreachable(exc, CatalogUnreachable)
        return True

    def verify(self) -> str | None:
        """Is the catalog opened still the one at the path, and reachable? None when it is,
        else why not (the health check's question; it never raises). On PostgreSQL it
        connects again when the connection was lost, so it also notices the catalog is back."""
        try:
            with self._lock:
                self._check_files()
                self._reconnect_if_lost()
                try:
                    self._check_id(self._conn)
                except db.OperationalError as exc:
                    if self._connection_lost(exc):
                        raise self._unreachable(exc, CatalogUnreachable) from None
                    raise
                if self.unreachable is not None and self.last_error == self.unreachable:
                    self.last_error = None  # that was the outage, over now
                self.unreachable = None
        except CatalogGone as exc:
            return exc.problem
        except db.Error as exc:
            return f"cannot read the catalog: {exc}"
        return None

    def reopen(self) -> bool:
        """After `CatalogGone`: open the path again if it holds this very catalog (its id), e.g.
        restored from a backup; True when writes go on. Another catalog there is never taken
        over (its volumes would not be ours): `last_error` says what to do."""
        if self.gone is None:
            return False
        with self._lock:
            try:
                conn = db.connect(self.path, create=False)
            except db.Error as exc:
                self.last_error = f"{self.gone}; nothing to reopen at {self.path} ({exc})"
                return False
            try:
                migrate(conn)
                found = conn.execute(_CATALOG_ID).fetchone()
            except (*db.Error, RuntimeError) as exc:  # RuntimeError: a newer schema
                conn.close()
                self.last_error = f"{self.gone}; {self.path} cannot be read ({exc})"
                return False
            if found is None or found[0] != self.catalog_id:
                conn.close()
                self.last_error = (
                    f"{self.gone}; {self.path} now holds another catalog "
                    f"({found[0] if found else 'no catalog id'}, this one is {self.catalog_id}): "
                    "restore this catalog's backup there, or restart ccvault to use the other"
                )
                return False
            old, self._conn = self._conn, conn
            old.close()
            self._files = self._file_ids()
            self.gone = self.last_error = None
            self.generation += 1
        return True

    def _file_ids(self) -> FileIds:
        """SQLite: (device, inode) of the catalog, its WAL and index; PostgreSQL: none (no
        file of ours; the catalog id is what is checked)."""
        if not isinstance(self.path, Path):
            return ()
        out: list[tuple[int, int] | None] = []
        for suffix in _COMPANIONS:
            try:
                st = os.stat(f"{self.path}{suffix}")
            except FileNotFoundError:
                out.append(None)
            else:
                out.append((st.st_dev, st.st_ino))
        return tuple(out)

    def _check_files(self) -> None:
        """The catalog file, its WAL and its index are those opened (a stat each)."""
        if self.gone is None:
            now = self._file_ids()
            if now != self._files:
                what = [
                    f"{self.path.name}{suffix}"
                    for suffix, was, is_ in zip(_COMPANIONS, self._files, now, strict=True)
                    if was is not None and was != is_
                ]
                if not what:  # only files that did not exist yet appeared (benign)
                    self._files = now
                elif now[0] is None:
                    self._lost("was deleted")
                else:
                    self._lost(f"was replaced ({', '.join(what)} is another file now)")
                if now[0] != self._files[0]:
                    self._drop_stale_log(now)
        if self.gone is not None:
            raise CatalogGone(str(self.path), self.gone)

    def _drop_stale_log(self, now: FileIds) -> None:  # SQLite only (no files otherwise)
        """The catalog file is gone but its WAL and index are still at the path: remove them
        (only if they are still the very files opened), or whatever database is put there next
        — a restored backup — would be read through this one's log, and corrupted."""
        for suffix, was, is_ in zip(_COMPANIONS[1:], self._files[1:], now[1:], strict=True):
            if was is not None and was == is_:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")

    def _check_id(self, conn: db.Connection) -> None:
        """The catalog read is this catalog (not another one copied over it in place)."""
        if not self.catalog_id:
            return
        row = conn.execute(_CATALOG_ID).fetchone()
        if row is None or row[0] != self.catalog_id:
            self._lost(f"was overwritten by another catalog ({row[0] if row else 'no id'})")
            raise CatalogGone(str(self.path), self.gone or "")

    def _lost(self, what: str) -> None:
        self.gone = (
            f"the catalog {self.path} {what} while ccvault had it open; nothing is written "
            "until it is back (footage waits in the spool)"
        )
        self.last_error = self.gone

    def _ensure_catalog_id(self) -> str:
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'catalog_id'").fetchone()
            if row:
                return row[0]
            new_id = str(uuid.uuid4())
            conn.execute("INSERT INTO meta (key, value) VALUES ('catalog_id', ?)", (new_id,))
            return new_id

    def record_event(
        self,
        actor: str,
        action: str,
        obj: str,
        details: dict[str, Any],
        now_ms: int,
        checkpoint: CheckpointKind | None = None,
    ) -> None:
        """An audit record on its own (daemon start, reconcile repair, a backup)."""
        with self.transaction():
            self.audit(actor, action, obj, details, now_ms, checkpoint)


def _lock_base(target: db.Target, given: Path | None) -> Path:
    """What this node's lock files are named after (`<base>.retention-lock`, ...): the SQLite
    file, or for PostgreSQL a path in the node's state_dir (`Config.lock_base`, made here:
    SQLite's directory is made with the catalog); without one, a private directory of this
    writer's own, whose locks bind no other process."""
    if given is None:
        if isinstance(target, Path):
            return target
        return Path(tempfile.mkdtemp(prefix="ccvault-locks-")) / "catalog"
    if not isinstance(target, Path):
        make_dirs(given.parent)
    return given
