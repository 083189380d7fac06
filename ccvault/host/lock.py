"""One daemon per catalog: an flock on a file beside the catalog, released when the process
dies (no stale pid files). CLI commands use it to know whether the daemon is running."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ccvault.errors import Busy


def lock_path(catalog: Path) -> Path:
    return catalog.with_name(catalog.name + ".daemon.lock")


def take_daemon_lock(catalog: Path) -> int:
    """One daemon per catalog; the lock dies with the process, so no stale pid files."""
    catalog.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(catalog), os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(str(catalog), "another ccvault daemon is running on this catalog") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def daemon_running(catalog: Path) -> bool:
    try:
        fd = os.open(lock_path(catalog), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
