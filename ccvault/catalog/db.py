"""Opening catalog connections with the settings every process must share.

`connect(target)` opens a SQLite file (a `Path`) or a PostgreSQL database (`PgCatalog`); both
connections answer `execute(sql, params)` with `?` placeholders, rows read by index or name.
Callers catch this module's `Error`, `IntegrityError`, `OperationalError`, never a driver's.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ccvault.catalog.dialect import Backend, Error, IntegrityError, OperationalError, backend_of
from ccvault.config.catalog_target import PgCatalog
from ccvault.host.durable import keep_private, make_dirs, open_private

__all__ = [
    "Backend",
    "Connection",
    "Error",
    "IntegrityError",
    "OperationalError",
    "PgCatalog",
    "Target",
    "backend_of",
    "connect",
]

BUSY_TIMEOUT_MS = 10_000

Target = Path | PgCatalog
# Either engine's connection; both offer what the catalog code uses (execute, executemany,
# in_transaction, close) and rows read by index or column name.
Connection = Any


def connect(target: Target, *, readonly: bool = False, create: bool = True) -> Connection:
    """A connection to the catalog at `target`: a file path (SQLite) or a `PgCatalog`.

    PostgreSQL: autocommit (the writer issues BEGIN itself), a reader's transactions are
    read-only (`default_transaction_read_only`); the database must exist (never created)."""
    if isinstance(target, PgCatalog):
        from ccvault.catalog.pg import PgConnection  # psycopg only loads for PostgreSQL

        return PgConnection(target, readonly=readonly)
    return _connect_sqlite(target, readonly=readonly, create=create)


def tuples(conn: Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """A cursor over plain tuples (no per-row name lookup object on SQLite: a day's ~1,440
    rows build faster); PostgreSQL's rows are tuples already."""
    if isinstance(conn, sqlite3.Connection):
        cur = conn.cursor()
        cur.row_factory = None
        return cur.execute(sql, params)
    return conn.execute(sql, params)


def _connect_sqlite(path: Path, *, readonly: bool, create: bool) -> sqlite3.Connection:
    """WAL so readers never wait for the writer; a busy timeout so daemon and CLI can share.

    A reader (and `create=False`) never creates the file: opening a catalog that was deleted
    must fail, not leave an empty database at its path."""
    if readonly or not create:
        target = path.absolute().as_uri() + "?mode=rw"
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=True)
    else:
        make_dirs(path.parent)
        _create_private(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _use_wal(conn)
    # FULL: a committed row survives power loss, so a row never outlives its fsynced file's
    # promise in the other direction either.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        _tighten_companions(path)
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switching a new file to WAL takes an exclusive lock that SQLite does not wait for
    through the busy timeout: two processes opening a new catalog at once (two nodes, or the
    daemon and a CLI command at first start) would fail with "database is locked". Retried
    for as long as the busy timeout would have waited."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _create_private(path: Path) -> None:
    """A new catalog is made 0600 before SQLite opens it (its -wal and -shm take its mode);
    an existing one is only chmod-ed: opening and closing it here would drop SQLite's locks."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    keep_private(path)


def _tighten_companions(path: Path) -> None:
    """The WAL holds recent rows too: as private as the catalog, even when left wider."""
    for suffix in ("-wal", "-shm"):
        keep_private(Path(f"{path}{suffix}"))
