"""The spool as this node's journal while the catalog cannot be reached.

A finished segment waits in the spool exactly as ffmpeg left it: the file, and its line in its
run's `segments.csv` (name, start, end). That line is the journal entry, so nothing records a
segment twice in two places that could disagree, and catching up is ordinary ingest — the one
path that already stores a segment idempotently after a crash at any step (`SegmentStore.add`).

What an outage adds is durability: ffmpeg never fsyncs, and in normal running ingest fsyncs a
segment within seconds. While the catalog is unreachable `SpoolJournal.keep` fsyncs each
finished file once, then its list and the directories holding them, so a power cut during a
long outage loses no more than it would with the catalog there. `measure` says how much waits
(count, oldest start): `ccvault status`, the health snapshot and the metrics show it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from ccvault.host.durable import fsync_dir, fsync_file

log = structlog.get_logger("ccvault.ingest.backlog")


@dataclass(frozen=True, slots=True)
class Backlog:
    """Finished segments waiting in the spool for the catalog."""

    segments: int = 0
    oldest_ms: int | None = None  # wall-clock end of the oldest one (its start may be unknown)


@dataclass(frozen=True, slots=True)
class Waiting:
    """One finished segment in the spool: its file and the run it belongs to."""

    camera: str
    run_dir: Path
    path: Path
    end_ms: int


def waiting(run_dirs: Iterable[Path], read: Callable[[Path], list]) -> list[Waiting]:
    """Every listed segment whose file is still in the spool, run by run (`read` is
    `spool.read_list`, passed in: ingest owns the list's format)."""
    out = []
    for run_dir in run_dirs:
        for entry in read(run_dir / "segments.csv"):
            path = run_dir / entry.name
            if path.exists():
                out.append(Waiting(run_dir.parent.name, run_dir, path, entry.end_ms))
    return out


def measure(found: list[Waiting]) -> Backlog:
    return Backlog(len(found), min((w.end_ms for w in found), default=None))


class SpoolJournal:
    """Makes the spool's finished segments durable, each once, while they wait."""

    def __init__(self, on_kept: Callable[[str], None] = lambda _camera: None) -> None:
        self.on_kept = on_kept  # a camera's segment is safe (its recorder is not failing)
        self._kept: set[tuple[int, int]] = set()  # (device, inode) of files fsynced

    def keep(self, found: list[Waiting]) -> int:
        """fsync what is new (file, then its list and directories); how many were new."""
        runs: dict[Path, str] = {}
        new = 0
        for item in found:
            try:
                st = os.stat(item.path)
            except FileNotFoundError:
                continue  # stored meanwhile
            key = (st.st_dev, st.st_ino)
            if key in self._kept:
                continue
            fsync_file(item.path)
            self._kept.add(key)
            runs[item.run_dir] = item.camera
            new += 1
        for run_dir in runs:
            fsync_file(run_dir / "segments.csv")
            fsync_dir(run_dir)
            fsync_dir(run_dir.parent)  # the run's entry (a new run, after a reconnect)
            fsync_dir(run_dir.parent.parent)  # the camera's (a camera added meanwhile)
        for camera in set(runs.values()):
            self.on_kept(camera)
        if new:
            log.info("spool.kept", segments=new, runs=len(runs))
        return new

    def forget(self) -> None:
        """The catalog is back: what was kept is being stored; start afresh next time."""
        self._kept.clear()
