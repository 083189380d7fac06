"""One daemon per node and catalog: an flock on a file beside the catalog, released when the
process dies (no stale pid files). CLI commands use it to know whether their node's daemon is
running (several nodes' daemons may share one catalog, each with its own lock)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ccvault.errors import Busy


def lock_path(catalog: Path, node: str) -> Path:
    return catalog.with_name(f"{catalog.name}.{node}.daemon.lock")


def take_daemon_lock(catalog: Path, node: str) -> int:
    """One daemon per node; the lock dies with the process, so no stale pid files."""
    catalog.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(catalog, node), os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(
            str(catalog), f"another ccvault daemon is running on this catalog as node {node}"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def daemon_running(catalog: Path, node: str) -> bool:
    try:
        fd = os.open(lock_path(catalog, node), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _import_lock_path(catalog: Path) -> Path:
    return catalog.with_name(catalog.name + ".import.lock")


@contextlib.contextmanager
def import_running(catalog: Path) -> Iterator[None]:
    """Held (shared: imports may run side by side) while `ccvault import` stores and analyses
    footage, so start-up recovery can tell its segments from those of a crashed import."""
    fd = os.open(_import_lock_path(catalog), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def no_import_running(catalog: Path) -> Iterator[bool]:
    """True inside when no import is running (and none can start until the block ends)."""
    fd = os.open(_import_lock_path(catalog), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class FileLock:
    """An exclusive flock on a file of its own, taken without waiting, released by the kernel
    if the process dies: who runs one thing (an export job) across processes. A free lock on
    work marked running means its runner is gone; a held one, that another process is at it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def take(cls, path: Path) -> FileLock | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(path, fd)

    def release(self) -> None:
        """The file goes while still locked: whoever opened it meanwhile must check that the
        work is still to be done (an export's `exports.start` refuses a finished job)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)
