"""Making writes durable: a file's bytes, and a directory's entries (a link or rename)."""

from __future__ import annotations

import os
from pathlib import Path


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
