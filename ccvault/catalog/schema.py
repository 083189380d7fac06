"""Forward-only schema migrations, tracked in SQLite's `user_version`."""

from __future__ import annotations

import sqlite3
from importlib.resources import files

# One script per schema version, applied in order; released scripts are never edited.
MIGRATIONS: tuple[str, ...] = tuple(
    files("ccvault.catalog").joinpath(name).read_text()
    for name in (
        "schema.sql",
        "motion.sql",
        "retention.sql",
        "access.sql",
        "alerts.sql",
        "audit_head.sql",
        "camera_failing.sql",
        "access_control.sql",
        "visit_export.sql",
        "nodes.sql",
    )
)
# A script starting with this line rebuilds a table (SQLite changes no CHECK in place): it runs
# with foreign keys off, as SQLite's documented rebuild requires, and must leave none broken.
REBUILD = "-- ccvault: rebuilds a table"


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the catalog to the newest version; refuse a catalog from a newer ccvault."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"catalog schema version {current} is newer than this ccvault ({len(MIGRATIONS)})"
        )
    for version in range(current, len(MIGRATIONS)):
        rebuild = MIGRATIONS[version].startswith(REBUILD)
        if rebuild:
            conn.execute("PRAGMA foreign_keys = OFF")  # only outside a transaction
        try:
            _apply(conn, version)
        finally:
            if rebuild:
                conn.execute("PRAGMA foreign_keys = ON")
    return len(MIGRATIONS)


def _apply(conn: sqlite3.Connection, version: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-check under the lock: another process may have migrated meanwhile.
        if conn.execute("PRAGMA user_version").fetchone()[0] != version:
            conn.execute("ROLLBACK")
            return
        for statement in _statements(MIGRATIONS[version]):
            conn.execute(statement)
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"schema version {version + 1} broke foreign keys: {broken[:5]}")
        conn.execute(f"PRAGMA user_version = {version + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s]
