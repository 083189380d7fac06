"""`ccvault backup DIR`: a consistent copy of the catalog and the audit log, together.

The audit log is copied, and a read snapshot of the catalog pinned, while holding the catalog's
write lock: no segment, hold or audit record lands in between, so the copied audit log ends
exactly where the copied catalog does. The catalog copy then reads that snapshot with the lock
released, so recording never waits for a backup.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ccvault.catalog.audit import AuditLog
from ccvault.catalog.audit_checkpoints import CheckpointKind
from ccvault.catalog.audit_files import checkpoints_path
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.config.places import Place, Role, refusal
from ccvault.errors import CheckFailed, Refused
from ccvault.host.durable import fsync_dir, fsync_file, make_dirs, open_private
from ccvault.host.progress import SILENT, Progress, Unit
from ccvault.timefmt import utc_text

_CHUNK = 1 << 20
_PAGES = 1024  # catalog pages copied a step (4 MiB of 4 KiB pages)


def backup(
    config: Config,
    writer: CatalogWriter,
    dest_dir: Path,
    now_ms: int,
    actor: str,
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """Copy both into timestamped files and audit it; a partial copy is removed, never kept
    under a name that looks like a backup. Never into a volume or the spool, whose keepers
    would quarantine or expire it (`places.refusal`). `progress` counts the bytes copied."""
    if not isinstance(config.catalog_target, Path):
        raise Refused(
            "backup",
            "the catalog is a PostgreSQL database: back it up with pg_dump (or the server's "
            "own backups); ccvault backup copies a SQLite catalog",
        )
    problem = refusal(config, Place(str(dest_dir), dest_dir, Role.BACKUP))
    if problem:
        raise Refused("backup", problem)
    stamp = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
    catalog = dest_dir / f"catalog-{stamp}.sqlite"
    log = writer.audit_log
    audit = dest_dir / f"audit-{stamp}.jsonl" if log else None
    for path in (catalog, audit):
        if path is not None and path.exists():
            raise Refused(str(path), "exists already; a backup never replaces a file")
    make_dirs(dest_dir)
    created: list[Path] = []
    try:
        with writer.reader() as source:
            # Under the write lock: pin a read snapshot and copy the audit log, so both end at
            # the same write. The (long) catalog copy then reads the snapshot after the lock
            # is released, and recording never waits for a backup.
            with writer.transaction():
                source.execute("BEGIN")
                source.execute("SELECT COUNT(*) FROM meta").fetchone()
                records = _copy_audit(log, audit, created, progress) if log and audit else 0
            _copy_catalog(source, _create(catalog, created), progress)
            source.execute("COMMIT")
        fsync_dir(dest_dir)
        result = {
            "catalog": str(catalog),
            "audit": str(audit) if audit else None,
            "catalog_bytes": catalog.stat().st_size,
            "audit_records": records,
            "created": utc_text(now_ms),
        }
        details = {k: v for k, v in result.items() if k != "created"}
        # Signed at once: a catalog restored from this copy can be told from a forged log.
        writer.record_event(actor, "backup", "catalog", details, now_ms, CheckpointKind.BACKUP)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return result


def _create(path: Path, created: list[Path]) -> Path:
    """Exclusive create: a file that appeared since the check above is still never replaced."""
    try:
        os.close(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        raise Refused(str(path), "exists already; a backup never replaces a file") from None
    created.append(path)
    return path


def _copy_catalog(source: sqlite3.Connection, dest: Path, progress: Progress) -> None:
    """SQLite's online backup from the pinned snapshot, _PAGES pages a step. The copy leaves
    WAL mode so that it is one self-contained file, and is checked as reopened from disk."""
    page_size = source.execute("PRAGMA page_size").fetchone()[0]
    progress.expect(source.execute("PRAGMA page_count").fetchone()[0] * page_size, Unit.BYTES)

    def copied(_status: int, remaining: int, total: int) -> None:
        nonlocal done
        progress.advance((total - remaining) * page_size - done)
        done = (total - remaining) * page_size

    done = 0
    with closing(sqlite3.connect(dest)) as copy:
        source.backup(copy, pages=_PAGES, progress=copied)
        copy.execute("PRAGMA journal_mode = DELETE")
    fsync_file(dest)
    with closing(sqlite3.connect(dest.resolve().as_uri() + "?mode=ro", uri=True)) as check:
        verdict = check.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        raise CheckFailed(str(dest), f"the copy fails its integrity check: {verdict}")


def _copy_audit(log: AuditLog, dest: Path, created: list[Path], progress: Progress) -> int:
    """The whole chain byte for byte, its sealed files and the live one joined in order into
    one file (a missing log is an empty copy), and its checkpoints beside it under the
    matching name, so the copy verifies on its own. Returns the number of records."""
    records = 0
    files = log.files()
    progress.expect(sum(f.path.stat().st_size for f in files), Unit.BYTES)
    with _create(dest, created).open("wb") as out:
        for log_file in files:
            with log_file.path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    records += chunk.count(b"\n")
                    out.write(chunk)
                    progress.advance(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    if log.checkpoints.path.exists():
        target = _create(checkpoints_path(dest), created)
        target.write_bytes(log.checkpoints.path.read_bytes())
        fsync_file(target)
    return records
