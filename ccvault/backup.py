"""`ccvault backup DIR`: a consistent copy of the catalog and the audit log, together.

Both are copied while holding the catalog's write lock: no segment, hold or audit record can
land in between, so the copied audit log ends exactly where the copied catalog does.
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
    with writer.transaction() as conn:
        with closing(sqlite3.connect(catalog)) as copy:
            conn.backup(copy)
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise CheckFailed(str(catalog), f"copy failed its integrity check: {check}")
        fsync_file(catalog)
        records = 0
        if audit_src is not None and audit is not None:
            if audit_src.exists():
                shutil.copyfile(audit_src, audit)
            else:
                audit.touch()
            os.chmod(audit, 0o640)
            fsync_file(audit)
            records = sum(1 for line in audit.read_bytes().splitlines() if line.strip())
        fsync_dir(dest_dir)
        result = {"catalog": str(catalog), "audit": str(audit) if audit else None,
                  "catalog_bytes": catalog.stat().st_size, "audit_records": records,
                  "created": utc_text(now_ms)}
        writer.audit(actor, "backup", "catalog", result, now_ms)
    return result
