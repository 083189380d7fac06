"""What every benchmark shares: which ccvault source it measured, its cached data, clean-up."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ccvault_version() -> str:
    """The ccvault source measured: commit, and whether ccvault/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "ccvault"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head}{' + uncommitted changes in ccvault/' if dirty else ''}"


def cached_catalog_matches(path: Path, key: str, spec: str) -> bool:
    """A cached catalog is reused only when it was built to the same spec (meta key)."""
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return row is not None and row[0] == spec
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def remove_work(work: Path, keep: bool) -> None:
    """A bench's scratch directory goes unless --keep."""
    if not keep and work.exists():
        shutil.rmtree(work)
        print(f"removed {work}", file=sys.stderr)
