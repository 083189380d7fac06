"""Forward-only schema migrations, one path for both engines.

The version is SQLite's `user_version`, or on PostgreSQL the row of `ccvault_schema`
(`dialect.schema_version`). On PostgreSQL each script runs through `dialect.pg_ddl` (column
types); the few that cannot be translated mechanically have a PostgreSQL variant beside them
(`<name>.pg.sql`, in `PG_VARIANTS`), each saying why at its top.
"""

from __future__ import annotations

import sqlite3
from importlib.resources import files
from typing import Any

from ccvault.catalog.dialect import (
    Backend,
    backend_of,
    begin_write,
    pg_ddl,
    schema_version,
    set_schema_version,
    sync_identities,
)

_NAMES = (
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
    "audit_nodes.sql",
    "export_checks.sql",
    "object_locks.sql",
)
# One script per schema version, applied in order; released scripts are never edited.
MIGRATIONS: tuple[str, ...] = tuple(
    files("ccvault.catalog").joinpath(n).read_text() for n in _NAMES
)
# The PostgreSQL form of scripts SQLite-only syntax makes untranslatable (triggers, a table
# rebuilt where PostgreSQL alters a CHECK in place, a reserved word as a column name).
PG_VARIANTS: dict[int, str] = {
    version: files("ccvault.catalog").joinpath(name.replace(".sql", ".pg.sql")).read_text()
    for version, name in enumerate(_NAMES)
    if files("ccvault.catalog").joinpath(name.replace(".sql", ".pg.sql")).is_file()
}
# A script starting with this line rebuilds a table (SQLite changes no CHECK in place): it runs
# with foreign keys off, as SQLite's documented rebuild requires, and must leave none broken.
REBUILD = "-- ccvault: rebuilds a table"


def migrate(conn: Any) -> int:
    """Bring the catalog to the newest version; refuse a catalog from a newer ccvault."""
    backend = backend_of(conn)
    current = schema_version(conn, backend)
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"catalog schema version {current} is newer than this ccvault ({len(MIGRATIONS)})"
        )
    for version in range(current, len(MIGRATIONS)):
        # PostgreSQL checks foreign keys at each statement whatever the script; SQLite's
        # rebuild needs them off (only possible outside a transaction).
        rebuild = backend is Backend.SQLITE and MIGRATIONS[version].startswith(REBUILD)
        if rebuild:
            conn.execute("PRAGMA foreign_keys = OFF")
        try:
            _apply(conn, backend, version)
        finally:
            if rebuild:
                conn.execute("PRAGMA foreign_keys = ON")
    return len(MIGRATIONS)


def _apply(conn: Any, backend: Backend, version: int) -> None:
    begin_write(conn, backend)  # PostgreSQL: the writers' lock, so two nodes migrate once
    try:
        # Re-check under the lock: another process may have migrated meanwhile.
        if schema_version(conn, backend) != version:
            conn.execute("ROLLBACK")
            return
        if backend is Backend.SQLITE:
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"schema version {version + 1} broke foreign keys: {broken[:5]}")
        else:
            conn.executescript(pg_ddl(PG_VARIANTS.get(version, MIGRATIONS[version])))
            sync_identities(conn)
        set_schema_version(conn, backend, version + 1)
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
