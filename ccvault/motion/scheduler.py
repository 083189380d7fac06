"""Which segment is analysed next, where, and what happens to the result.

Per camera, segments are analysed strictly in time order, each continuing from the previous
one's background and open span (`Carry`), so segment starts are neither blind nor falsely
"moving" and spans run across segment boundaries. Cameras are analysed in parallel in worker
processes at lower CPU priority, so analysis never slows recording or ingest. When workers are
scarce, the camera whose waiting footage is newest goes first: live before backlog.

The loop is woken by each finished analysis (and otherwise ticks once a second for new
segments): a fixed tick alone capped throughput at one segment per tick per worker, so 16
cameras with 10 s segments already fell behind on an idle worker (bench/capacity.py). Each
worker has one more segment (of another camera) queued behind the one it analyses, so it never
waits for the daemon to collect a result and hand it the next.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from ccvault.catalog import queries
from ccvault.catalog.rows import AnalysisState, Segment, Span
from ccvault.catalog.writer import CatalogGone, CatalogWriter
from ccvault.config.model import Config
from ccvault.config.policy import MotionSettings
from ccvault.host.children import die_with_parent
from ccvault.host.lock import no_import_running
from ccvault.motion.analysis import Analysis, Carry, analyze, finish
from ccvault.storage.volumes import Volume, local_roots

log = structlog.get_logger("ccvault.motion")

# A segment that does not follow the last one within this gap starts a fresh background.
CONTINUITY_MS = 5_000
TICK_S = 1.0
# Segments in flight per worker process: the one analysed and one queued behind it.
QUEUED_PER_WORKER = 2


# Analysis runs below recording and ingest (nice 0): a recorder that waits for the CPU loses
# footage, an analysis that waits only catches up later.
WORKER_NICE = 10


def default_workers() -> int:
    """One worker per CPU this process may use: at WORKER_NICE they take only what recording
    leaves, and CPUs − 1 left a core's leftovers unused — on a 2-core node one worker, which
    a loaded machine gave a quarter of a core, so 32 cameras' analysis fell behind
    (bench/capacity.py) while two kept up."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass
class CameraCursor:
    """What carries from one of a camera's segments to the next."""

    carry: Carry | None = None
    end_ms: int | None = None

    def carry_for(self, seg: Segment) -> tuple[Carry | None, list[Span]]:
        """The carry to analyse seg with, and spans closed because seg does not follow on."""
        if self.carry is None or self.end_ms is None:
            return None, []
        if abs(seg.start_ms - self.end_ms) > CONTINUITY_MS:
            closed = finish(self.carry)
            self.carry = None
            return None, closed
        return self.carry, []

    def advance(self, seg: Segment, result: Analysis) -> Span | None:
        """Take the result's carry; return the span still open at its end, if any."""
        self.carry, self.end_ms = result.carry, seg.end_ms
        still_open = finish(copy.deepcopy(result.carry))
        return still_open[-1] if still_open else None


def record(
    writer: CatalogWriter,
    settings: MotionSettings,
    seg: Segment,
    closed: list[Span],
    still_open: Span | None,
) -> None:
    pad_ms = (round(settings.pre_seconds * 1000), round(settings.post_seconds * 1000))
    writer.motion.record(seg.camera, [seg.id], AnalysisState.ANALYSED, closed, still_open, pad_ms)
    for span in closed:
        log.info(
            "motion.span",
            camera=seg.camera,
            kind=span.kind,
            start_ms=span.start_ms,
            end_ms=span.end_ms,
            peak=round(span.peak, 3),
        )


def analyse_in_order(
    writer: CatalogWriter,
    settings: MotionSettings,
    segments: list[Segment],
    paths: dict[str, Path],
    progress: Callable[[int], None] = lambda _: None,
) -> None:
    """Analyse one camera's segments here and now, in order, closing everything at the end
    (an import returns only when its footage is analysed)."""
    cursor = CameraCursor()
    for seg in segments:
        carry, closed = cursor.carry_for(seg)
        result = analyze(paths[seg.volume] / seg.path, settings, start_ms=seg.start_ms, carry=carry)
        cursor.advance(seg, result)
        record(writer, settings, seg, closed + result.spans, None)
        progress(seg.end_ms - seg.start_ms)
    if cursor.carry is not None and segments:
        record(writer, settings, segments[-1], finish(cursor.carry), None)


def reset_interrupted(writer: CatalogWriter) -> int:
    """Start-up recovery: segments an import was analysing when it died (it analyses its own
    footage before it returns) wait for the daemon's analysis again. Skipped while an import
    runs: it still holds its lock, and its segments are its own."""
    with no_import_running(writer.lock_base) as idle:
        if not idle:
            log.info("motion.reset_skipped", reason="an import is running")
            return 0
        count = writer.motion.reset(AnalysisState.BY_IMPORT, AnalysisState.WAITING)
    if count:
        log.warning("motion.analysis_reset", segments=count)
    return count


def _init_worker(daemon_pid: int) -> None:
    """Analysis yields to recording and ingest, and ends with the daemon however it ends.

    Ctrl-C reaches the whole process group; the daemon decides when its workers stop."""
    os.nice(WORKER_NICE)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(daemon_pid)


def _analyze_in_worker(
    path: Path, settings: MotionSettings, start_ms: int, carry: Carry | None
) -> Analysis:
    return analyze(path, settings, start_ms=start_ms, carry=carry)


@dataclass
class _SettingsCache:
    """One config's cameras and their effective motion settings, as they are asked for."""

    config: Config
    by_camera: dict[str, MotionSettings] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cameras = {c.name for c in self.config.cameras}

    def settings(self, camera: str) -> MotionSettings:
        if camera not in self.by_camera:
            self.by_camera[camera] = self.config.motion_for(self.config.camera(camera))
        return self.by_camera[camera]


@dataclass
class _Job:
    seg: Segment
    closed_before: list[Span]
    future: Future[Analysis]


@dataclass
class MotionScheduler:
    config: Config
    writer: CatalogWriter
    volumes: Callable[[], list[Volume]]
    workers: int = field(default_factory=default_workers)
    cursors: dict[str, CameraCursor] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)
    heartbeat: float = 0.0
    # Told after each analysed segment of a camera: its closed spans and the one still open
    # (motion start/end for those who follow it live, e.g. the MQTT publisher).
    on_spans: Callable[[str, list[Span], Span | None], None] = lambda _c, _closed, _open: None

    def __post_init__(self) -> None:
        # spawn: the daemon has threads, and forking a threaded process can deadlock.
        self.pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        self._stop = threading.Event()
        self._wake = threading.Event()  # an analysis finished, or the loop must stop
        self._cache: _SettingsCache | None = None

    def run(self) -> None:
        log.info("motion.started", workers=self.workers, nice=WORKER_NICE)
        while True:
            self._wake.wait(TICK_S)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.tick()
            except CatalogGone:
                pass  # catalog_error says it; what waits is analysed when it is back
            except Exception:
                log.exception("motion.tick_failed")
            self.heartbeat = time.monotonic()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._collect()

    def apply(self, config: Config) -> None:
        self.config = config

    def settings_for(self, camera: str) -> MotionSettings:
        """The camera's effective motion settings (the global ones for a camera no longer in
        the config), worked out once per config: the loop asks at every wake, for every
        waiting camera."""
        return self._settings().settings(camera)

    def _settings(self) -> _SettingsCache:
        config = self.config  # a reload replaces it from another thread
        if self._cache is None or self._cache.config is not config:
            self._cache = _SettingsCache(config)
        return self._cache

    def stop(self) -> None:
        """Ask the loop to end; it finishes the analyses under way (their results are lost
        with the process; the segments stay waiting in the catalog)."""
        self._stop.set()
        self._wake.set()

    def tick(self) -> None:
        self._collect()
        with self.writer.reader() as conn:
            waiting = queries.oldest_waiting(conn)  # one indexed query, even with a backlog
        settings = {s.camera: self.settings_for(s.camera) for s in waiting}
        # Only this node's cameras: another's footage is its own to analyse (or to skip).
        disabled = [
            s.camera
            for s in waiting
            if not settings[s.camera].enabled and s.node in (None, self.config.node.name)
        ]
        if disabled:
            self.writer.motion.skip(disabled, AnalysisState.NOT_ANALYSED)
        paths = self._paths()
        ready = [
            s
            for s in waiting
            if settings[s.camera].enabled
            and s.camera not in self.jobs
            and s.volume in paths
            and s.camera in self._settings().cameras
        ]
        free = QUEUED_PER_WORKER * self.workers - len(self.jobs)
        # Newest waiting footage first: live cameras before an import's backlog.
        for seg in sorted(ready, key=lambda s: s.start_ms, reverse=True)[: max(0, free)]:
            self._submit(seg, settings[seg.camera], paths)

    def _collect(self) -> None:
        for camera, job in list(self.jobs.items()):
            if not job.future.done():
                continue
            del self.jobs[camera]
            settings = self.settings_for(camera)
            try:
                result = job.future.result()
            except Exception as exc:  # an undecodable file must not stop the camera's analysis
                log.warning("motion.failed", camera=camera, segment_id=job.seg.id, error=str(exc))
                self.cursors.pop(camera, None)
                self.writer.motion.set_state([job.seg.id], AnalysisState.NOT_ANALYSED)
                continue
            still_open = self.cursors.setdefault(camera, CameraCursor()).advance(job.seg, result)
            closed = job.closed_before + result.spans
            record(self.writer, settings, job.seg, closed, still_open)
            self.on_spans(camera, closed, still_open)

    def _submit(self, seg: Segment, settings: MotionSettings, paths: dict[str, Path]) -> None:
        cursor = self.cursors.setdefault(seg.camera, CameraCursor())
        carry, closed = cursor.carry_for(seg)
        path = paths[seg.volume] / seg.path
        future = self.pool.submit(_analyze_in_worker, path, settings, seg.start_ms, carry)
        future.add_done_callback(lambda _done: self._wake.set())
        self.jobs[seg.camera] = _Job(seg, closed, future)

    def _paths(self) -> dict[str, Path]:
        return local_roots(self.volumes())  # (archived footage is not analysed)
