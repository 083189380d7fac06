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
        "access_control.sql",
    )
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the catalog to the newest version; refuse a catalog from a newer ccvault."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"catalog schema version {current} is newer than this ccvault ({len(MIGRATIONS)})"
        )
    for version in range(current, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check under the lock: another process may have migrated meanwhile.
            if conn.execute("PRAGMA user_version").fetchone()[0] != version:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s]
