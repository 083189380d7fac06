"""Making writes durable: a file's bytes, and a directory's entries (a link or rename)."""

from __future__ import annotations

import os
from pathlib import Path

import structlog

log = structlog.get_logger("ccvault.host.durable")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or link durable; a failure here means the directory entry may be lost."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> list[Path]:
    """`mkdir -p` whose result survives a power cut: each directory it creates is fsynced, and
    so is the parent that holds its entry (fsyncing only the last one, as a plain `mkdir -p`
    then `fsync_dir` does, can lose a new day directory and every fsynced file inside it).
    Returns the directories created, outermost first."""
    missing = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    created = []
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made meanwhile by another thread or process: it made it durable
        created.append(directory)
        fsync_dir(directory)
        fsync_dir(directory.parent)
    return created


PRIVATE_MODE = 0o600  # the catalog, the audit log, keys, backups: their owner's alone


def keep_private(path: Path) -> None:
    """Set a file to 0600 whatever the umask made it. A wider mode (an older ccvault's 0640, a
    restore, a chmod) is tightened rather than refused — the owner keeps every right it
    needs, nobody else had any business reading it — and logged, since someone may have read
    it meanwhile. A file ccvault does not own and cannot change is logged as an error.

    By path, never through a new descriptor: closing one would drop the POSIX locks SQLite
    holds on the catalog and its -shm in this process."""
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return
    if mode == PRIVATE_MODE:
        return
    try:
        os.chmod(path, PRIVATE_MODE)
    except OSError as exc:
        log.error("file.mode_wide", path=str(path), mode=oct(mode), error=str(exc))
        return
    if mode & 0o077:
        log.warning("file.mode_tightened", path=str(path), was=oct(mode), now=oct(PRIVATE_MODE))


def open_private(path: Path, flags: int) -> int:
    """os.open for a private file: made 0600 if new, tightened if not (`keep_private`)."""
    fd = os.open(path, flags, PRIVATE_MODE)
    keep_private(path)
    return fd
