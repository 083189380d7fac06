"""Moving finished segments from the spool into the store.

Recorders write `<spool>/<camera>/<run>/NNNNNN.mp4` and ffmpeg appends each finished file to
`<run>/segments.csv` (name, start, end in wall-clock seconds). That list — not file events,
not open-file scanning — says which files are finished. The recorders wake the scan when ffmpeg
has listed a segment (it logs the next file's opening after the entry) or exits, and such a
wake scans that camera's runs only (a whole-spool scan at each of 64 cameras' 6.4 segments a
second listed 65 directories and read 64 lists each time); the periodic rescan, of the whole
spool, is the truth. (A recursive inotify watch on the spool used to wake it: every packet
ffmpeg flushes is an event, ~1,000 a second at 64 cameras, all parsed in Python for nothing.)

A scan reads each run's list from where it stopped and looks again only at entries whose file
is still in the spool, so its cost does not grow with the run's age (a day of 10 s segments
is 8,640 entries a camera, once re-read and stat'ed at every wake).

When a run has ended (its ffmpeg is gone, e.g. killed), the file after its last listed entry is
the segment that was being written: a fragmented MP4 is readable up to its last fragment, and it
starts where the last listed one ended, so it is salvaged. Anything else unlisted is quarantined.

While the catalog cannot take rows (gone, or PostgreSQL unreachable) the spool is the journal
(`ingest/backlog.py`): recorders go on, each finished segment is made durable where it waits,
and the scans that follow — ordinary ingest, in order — store it once the catalog is back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from ccvault.catalog.writer import CatalogGone
from ccvault.config.model import Config
from ccvault.config.places import SPOOL_DIR
from ccvault.ingest.backlog import Backlog, SpoolJournal, measure, waiting
from ccvault.storage.media import ProbeError, probe, sha256_file
from ccvault.storage.store import NoVolume, SegmentStore, Stored
from ccvault.storage.volumes import VolumeSet, spool_dirs

log = structlog.get_logger("ccvault.ingest.spool")

LIST_FILE = "segments.csv"
# A listed duration that disagrees with the file by more than this is not trusted.
LIST_TOLERANCE_MS = 2000


@dataclass(frozen=True, slots=True)
class ListEntry:
    name: str
    start_ms: int
    end_ms: int


def read_list(path: Path) -> list[ListEntry]:
    """Parse ffmpeg's CSV segment list, ignoring a line cut short by a crash."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return _parse(text)


def _parse(text: str) -> list[ListEntry]:
    entries = []
    for line in text.splitlines(keepends=True):
        parts = line.strip().split(",")
        if not line.endswith("\n") or len(parts) != 3:
            continue
        try:
            start, end = float(parts[1]), float(parts[2])
        except ValueError:
            continue
        entries.append(ListEntry(parts[0], round(start * 1000), round(end * 1000)))
    return entries


@dataclass
class RunList:
    """What ingest has read of one run's list: the bytes up to the last complete line, the
    entries in them, and how many leading entries are done (their file has left the spool:
    stored or quarantined). Kept in memory only: a restarted daemon reads every list whole."""

    pos: int = 0
    entries: list[ListEntry] = field(default_factory=list)
    done: int = 0

    def read(self, path: Path) -> list[ListEntry]:
        """Every entry so far, reading only what was appended since the last call."""
        try:
            with open(path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return self.entries
        complete = data.rfind(b"\n") + 1  # a line still being written waits for its newline
        self.pos += complete
        self.entries += _parse(data[:complete].decode(errors="replace"))
        return self.entries


def segment_times(entry: ListEntry, duration_ms: int) -> tuple[int, int]:
    """Wall-clock range of a listed segment.

    ffmpeg lists the first segment of a run as starting at 0; its end (the next segment's first
    packet) is exact, so the start is the end minus the file's own duration."""
    if entry.start_ms <= 0:
        return entry.end_ms - duration_ms, entry.end_ms
    listed = entry.end_ms - entry.start_ms
    if listed <= 0 or abs(listed - duration_ms) > LIST_TOLERANCE_MS:
        return entry.start_ms, entry.start_ms + duration_ms
    return entry.start_ms, entry.end_ms


class Ingestor:
    def __init__(
        self,
        store: SegmentStore,
        spools: list[Path],
        active_runs: Callable[[], set[Path]],
        on_kept: Callable[[str], None] = lambda _camera: None,
    ) -> None:
        self.store = store
        self.spools = spools  # the first is where recorders write; the rest are drained
        self.active_runs = active_runs
        self._wake = threading.Event()
        self._woken: set[str] | None = None  # cameras to scan at the wake; None: the spool
        self._woken_lock = threading.Lock()
        self._stop = threading.Event()
        self._lists: dict[Path, RunList] = {}  # what each run's list said so far
        self.heartbeat = store.clock.monotonic()  # progress of the loop (the watchdog)
        self._catalog_gone = False  # logged once per outage
        self.journal = SpoolJournal(on_kept)  # the spool made durable while it waits

    def scan(self, cameras: set[str] | None = None) -> list[Stored]:
        """One pass over these cameras' runs (None: the whole spool), each camera's oldest run
        first; safe to repeat at any time."""
        results: list[Stored] = []
        runs = run_dirs(self.spools, cameras)
        # Asked once per pass (each recorder is asked), and after the listing: a run listed
        # then existed then, so a recorder still writing it is in this answer.
        active = self.active_runs()
        if cameras is None:  # what each run's list said: forget the runs that are gone
            self._lists = {run: self._lists[run] for run in runs if run in self._lists}
        for run_dir in runs:
            results += self._scan_run(run_dir.parent.name, run_dir, run_dir in active)
        return results

    def run_dirs(self) -> list[Path]:
        return run_dirs(self.spools)

    def backlog(self) -> Backlog:
        """What waits in the spool (finished, listed, not stored yet)."""
        return measure(waiting(self.run_dirs(), read_list))

    def _scan_run(self, camera: str, run_dir: Path, active: bool) -> list[Stored]:
        listed = self._lists.setdefault(run_dir, RunList())
        entries = listed.read(run_dir / LIST_FILE)
        results = []
        for index in range(listed.done, len(entries)):
            src = run_dir / entries[index].name
            if src.exists():
                results.append(self._ingest_listed(camera, src, entries[index]))
            if listed.done == index and not src.exists():
                listed.done = index + 1  # never looked at again
        if not active:
            results += self._finish_run(camera, run_dir, entries)
            self._lists.pop(run_dir, None)
        return results

    def _ingest_listed(self, camera: str, src: Path, entry: ListEntry) -> Stored:
        return self._ingest(
            camera, src, lambda duration: segment_times(entry, duration), "probe failed"
        )

    def _ingest(
        self, camera: str, src: Path, times: Callable[[int], tuple[int, int]], failure: str
    ) -> Stored:
        """Probe, then store with the times derived from the file's duration, or quarantine."""
        self.heartbeat = self.store.clock.monotonic()  # a long catch-up is progress too
        try:
            media = probe(src)
        except ProbeError as exc:
            return self.store.quarantine(src, camera, f"{failure}: {exc}")
        start_ms, end_ms = times(media.duration_ms)
        return self.store.add(src, camera, start_ms, end_ms, media, sha256_file(src), "recorded")

    def _finish_run(self, camera: str, run_dir: Path, entries: list[ListEntry]) -> list[Stored]:
        """A run whose recorder is gone: salvage its last open segment, then remove the run."""
        listed = {e.name for e in entries}
        results = []
        successor = _next_name(entries[-1].name) if entries else None
        for src in sorted(run_dir.glob("*.mp4")):
            if src.name in listed:
                continue
            if _holds_no_frames(src):
                src.unlink()  # opened, killed before its first fragment: no footage to keep
            elif src.name == successor and entries:
                results.append(self._salvage(camera, src, entries[-1].end_ms))
            else:
                results.append(
                    self.store.quarantine(
                        src, camera, "unfinished segment whose start time is unknown"
                    )
                )
        (run_dir / LIST_FILE).unlink(missing_ok=True)
        try:
            run_dir.rmdir()
        except OSError:
            log.warning("ingest.run_not_empty", camera=camera, run=run_dir.name)
        return results

    def _salvage(self, camera: str, src: Path, start_ms: int) -> Stored:
        log.info("segment.salvaged", camera=camera, file=src.name)
        return self._ingest(
            camera, src, lambda duration: (start_ms, start_ms + duration), "unfinished segment"
        )

    # -- running in the daemon -------------------------------------------------------------

    def wake(self, camera: str | None = None) -> None:
        """Scan soon: that camera's runs (its recorder listed a segment or ended), or the whole
        spool."""
        with self._woken_lock:
            if camera is None:
                self._woken = None
            elif self._woken is not None:
                self._woken.add(camera)
        self._wake.set()

    def run(self) -> None:
        """The ingest loop: scan when a recorder wakes it or at a rescan tick."""
        self.spools[0].mkdir(parents=True, exist_ok=True)
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._woken_lock:
                woken, self._woken = self._woken, set()
            self._scan_once(woken)
            self.heartbeat = self.store.clock.monotonic()

    def _scan_once(self, cameras: set[str] | None) -> None:
        """One scan; what stops it is logged, never raised (the loop goes on)."""
        try:
            self.scan(cameras)
            if self._catalog_gone:
                self._catalog_gone = False
                self.journal.forget()
                log.info("ingest.catalog_back")
        except NoVolume:
            log.error("ingest.no_volume", spools=[str(p) for p in self.spools])
        except CatalogGone as exc:  # the spool keeps everything until it is back
            if not self._catalog_gone:
                self._catalog_gone = True
                log.error("ingest.catalog_gone", error=exc.problem)
            self._keep_spool()
        except Exception:
            log.exception("ingest.scan_failed")

    def _keep_spool(self) -> None:
        """The catalog cannot take rows: make what waits in the spool durable there."""
        try:
            self.journal.keep(waiting(self.run_dirs(), read_list))
        except OSError as exc:
            log.error("spool.keep_failed", error=str(exc))

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


def run_dirs(spools: list[Path], cameras: set[str] | None = None) -> list[Path]:
    """`<spool>/<camera>/<run>` directories (of these cameras; None: all), each camera's
    oldest run first; dot-dirs are not cameras."""
    dirs = sorted(
        p
        for spool in spools
        if spool.is_dir()
        for p in (spool.iterdir() if cameras is None else (spool / c for c in cameras))
        if p.is_dir() and p.name[0] != "."
    )
    return [run for cam in dirs for run in sorted(cam.iterdir(), key=_run_order) if run.is_dir()]


def spool_backlog(config: Config) -> Backlog:
    """What waits in every spool this node may have (read without the catalog, which says
    which volumes are ours: a volume's `.spool`, the state_dir's, or `[storage] spool`)."""
    if config.storage.spool is not None:
        spools = [config.storage.spool]
    else:
        spools = [v.path / SPOOL_DIR for v in config.storage.directories if v.path]
        spools.append(config.state_dir / SPOOL_DIR)
    return measure(waiting(run_dirs(spools), read_list))


class SpoolRouter:
    """Recorders write where new footage goes: a spool on a volume full of held footage would
    fill it to ENOSPC, so the recorders' spool moves with the target volume, and the old one is
    drained until empty. An explicit `[storage] spool` never moves."""

    def __init__(
        self,
        config: Config,
        volumes: VolumeSet,
        ingestor: Ingestor,
        move: Callable[[Path], None],
        record: Path,
    ) -> None:
        self.config, self.volumes, self.ingestor = config, volumes, ingestor
        self.move = move  # tells the recorders (Supervisor.move_spool)
        self.record = record

    def follow(self) -> None:
        target = spool_dirs(self.config, self.volumes.writable()).record
        if target == self.record or self.config.storage.spool is not None:
            return
        if target not in self.ingestor.spools:
            self.ingestor.spools.append(target)
        self.record = target
        self.move(target)

    def apply(self, config: Config) -> None:
        self.config = config


def _run_order(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (0, path.name)


def _next_name(name: str) -> str | None:
    stem, _, ext = name.partition(".")
    if not stem.isdigit():
        return None
    return f"{int(stem) + 1:0{len(stem)}d}.{ext}"


def _holds_no_frames(path: Path) -> bool:
    """A fragmented MP4 killed before its first fragment: a header of a few hundred bytes."""
    if path.stat().st_size > 64 * 1024:
        return False
    try:
        probe(path)
    except ProbeError as exc:
        return "no video frames" in str(exc) or path.stat().st_size < 1024
    return False
