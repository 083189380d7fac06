"""`ccvault backup DIR`: a consistent copy of the catalog and the audit log, together.

The audit log is copied, and a read snapshot of the catalog pinned, while holding the catalog's
write lock: no segment, hold or audit record lands in between, so the copied audit log ends
exactly where the copied catalog does. The (long) catalog copy then reads the snapshot
without blocking recording.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ccvault.catalog.writer import CatalogWriter
from ccvault.durable import fsync_dir, fsync_file
from ccvault.errors import CheckFailed, Refused
from ccvault.timefmt import utc_text


def backup(writer: CatalogWriter, dest_dir: Path, now_ms: int, actor: str) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
    dest_dir.mkdir(parents=True, exist_ok=True)
    catalog = dest_dir / f"catalog-{stamp}.sqlite"
    audit_src = writer.audit_log.path if writer.audit_log else None
    audit = dest_dir / f"audit-{stamp}.jsonl" if audit_src else None
    for path in (catalog, audit):
        if path is not None and path.exists():
            raise Refused(str(path), "exists already; a backup never replaces a file")
    with writer.reader() as snapshot:
        # Under the write lock, pin a read snapshot and copy the audit log: both then end at
        # the same write. The catalog is copied from the snapshot after the lock is released.
        with writer.transaction():
            snapshot.execute("BEGIN")
            snapshot.execute("SELECT COUNT(*) FROM meta").fetchone()
            records = _copy_audit(audit_src, audit)
        with closing(sqlite3.connect(catalog)) as copy:
            snapshot.backup(copy)
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
        snapshot.execute("COMMIT")
    if check != "ok":
        raise CheckFailed(str(catalog), f"copy failed its integrity check: {check}")
    fsync_file(catalog)
    fsync_dir(dest_dir)
    result = {"catalog": str(catalog), "audit": str(audit) if audit else None,
              "catalog_bytes": catalog.stat().st_size, "audit_records": records,
              "created": utc_text(now_ms)}
    writer.record_event(actor, "backup", "catalog", result, now_ms)
    return result


def _copy_audit(src: Path | None, dst: Path | None) -> int:
    if src is None or dst is None:
        return 0
    if src.exists():
        shutil.copyfile(src, dst)
    else:
        dst.touch()
    os.chmod(dst, 0o640)
    fsync_file(dst)
    return sum(1 for line in dst.read_bytes().splitlines() if line.strip())
