"""`ccvault run`: wiring only — build the parts, reconcile, start the loops, stop cleanly.

Start-up order matters: take the daemon lock (one daemon per catalog), open and migrate the
catalog, check the volumes, reconcile (so footage left by a crash is ingested before any new
recording starts), then start recorders, ingest, motion analysis and the scheduler.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from ccvault import __version__
from ccvault.api.context import ApiContext
from ccvault.api.server import ApiServer
from ccvault.audit import AuditLog
from ccvault.catalog.writer import CatalogWriter
from ccvault.clock import Clock, SystemClock
from ccvault.config import LoadedConfig
from ccvault.errors import CcvaultError
from ccvault.export import ExportJobs
from ccvault.ingest import Ingestor
from ccvault.integrity import Scrubber
from ccvault.lock import take_daemon_lock
from ccvault.motion.scheduler import MotionScheduler, default_workers
from ccvault.reconcile import reconcile
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.recorder.states import CameraState
from ccvault.recorder.supervisor import Supervisor
from ccvault.retention import forecast
from ccvault.retention.executor import Executor, recover
from ccvault.retention.passes import PassState, run_pass, run_pressure
from ccvault.retention.pressure import low_filesystems
from ccvault.store import SegmentStore
from ccvault.volumes import Volume, open_volumes, spool_dirs
from ccvault.volumes import usage as volume_usage

log = structlog.get_logger("ccvault.daemon")

VOLUME_CHECK_S = 30
RETENTION_EVERY_S = 300
RETENTION_FIRST_S = 15
PRESSURE_EVERY_S = 30
FREE_SPACE_WATCH_S = 2


class Daemon:
    def __init__(self, loaded: LoadedConfig, clock: Clock | None = None) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.clock = clock or SystemClock()
        self.stopping = threading.Event()
        self.volumes: list[Volume] = []
        self.blocked: set[str] = set()  # full of held footage: no new segments there
        self._pressure_lock = threading.Lock()
        self.low_filesystems: set[str] = set()  # catalog/spool filesystems under a reserve

    def run(self) -> int:
        config = self.config
        lock_fd = take_daemon_lock(config.storage.catalog)
        writer = CatalogWriter(config.storage.catalog, AuditLog(config.audit_path))
        log.info("daemon.starting", version=__version__, config=str(self.loaded.path),
                 catalog=str(config.storage.catalog), cameras=len(config.cameras))
        for warning in self.loaded.warnings:
            log.warning("config.warning", detail=warning)
        writer.ensure_cameras(c.name for c in config.cameras)
        self._check_volumes(writer)
        # Intents first: a half-done purge must finish before reconcile could adopt its file.
        recovered = recover(writer, self.volumes)
        writer.record_event("daemon", "daemon.start", "daemon",
                            {"version": __version__, "config": str(self.loaded.path),
                             "cameras": [c.name for c in config.cameras],
                             "intents_recovered": recovered}, self.clock.wall_ms())
        store = SegmentStore(writer, self.writable_volumes, self.clock)
        spool, spools = spool_dirs(config, self.volumes)
        log.info("daemon.spool", spool=str(spool))
        def save_state(camera: str, state: CameraState, since_ms: int, reason: str) -> None:
            writer.set_camera_state(camera, str(state), since_ms, reason)

        supervisor = Supervisor(config, spool, self.clock, save_state, lambda: ingestor.wake())
        ingestor = Ingestor(store, spools, supervisor.active_runs)
        self.supervisor, self.ingestor = supervisor, ingestor
        reconcile(writer, store, self.volumes, ingestor, dry_run=False, daemon_running=False)
        # Exports left by a restart run again; the HTTP API starts before recording so a
        # taken port fails start-up at once, not after cameras were opened.
        self.exports = ExportJobs(config, writer, lambda: self.volumes, self.clock,
                                  ffmpeg_binary(config))
        self.exports.resume()
        api = ApiServer(ApiContext(config, writer, self.clock, lambda: self.volumes,
                                   self.exports))
        api.start()

        scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone="UTC",
        )
        scheduler.add_listener(_job_failed, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        scheduler.add_job(ingestor.wake, "interval", seconds=config.recording.rescan_seconds,
                          id="spool_rescan")
        scheduler.add_job(self._check_volumes, "interval", args=(writer,),
                          seconds=VOLUME_CHECK_S, id="volume_check")
        executor = Executor(writer, lambda: self.volumes, self.clock.wall_ms,
                            ffmpeg_binary(config), stopping=self.stopping)
        soon = datetime.now(UTC) + timedelta(seconds=RETENTION_FIRST_S)
        scheduler.add_job(self._retention_pass, "interval", args=(writer, executor, spools,
                                                                  supervisor.active_runs),
                          seconds=RETENTION_EVERY_S, id="retention", next_run_time=soon)
        scheduler.add_job(self._pressure_check, "interval", args=(writer, executor),
                          seconds=PRESSURE_EVERY_S, id="pressure",
                          next_run_time=datetime.now(UTC))
        scheduler.add_job(self._watch_free_space, "interval", args=(writer, executor),
                          seconds=FREE_SPACE_WATCH_S, id="free_space_watch")
        motion = MotionScheduler(config, writer, lambda: self.volumes,
                                 config.motion.workers or default_workers())
        scrubber = Scrubber(writer, lambda: self.volumes, self.clock,
                            config.integrity.scrub_mb_per_s)
        threads = [threading.Thread(target=supervisor.run, name="supervisor"),
                   threading.Thread(target=ingestor.run, name="ingest"),
                   threading.Thread(target=motion.run, name="motion"),
                   threading.Thread(target=scrubber.run, name="scrub")]
        for thread in threads:
            thread.start()
        scheduler.start()
        self._install_signals()
        log.info("daemon.ready", volumes={v.name: v.state for v in self.volumes})
        self.stopping.wait()

        log.info("daemon.stopping")
        api.stop()
        scheduler.shutdown(wait=True)  # a running pass stops at its next batch
        self.exports.stop()  # a job cut off here is run again at the next start
        supervisor.stop()
        threads[0].join()
        ingestor.stop()
        threads[1].join()
        try:
            ingestor.scan()  # the segments the recorders just closed
        except CcvaultError as exc:  # e.g. no volume: they stay in the spool for next start
            log.error("daemon.final_scan_failed", error=str(exc))
        motion.stop()  # what is not analysed yet waits in the catalog for the next start
        threads[2].join()
        scrubber.stop()
        threads[3].join()
        writer.close()
        os.close(lock_fd)
        log.info("daemon.stopped")
        return 0

    def writable_volumes(self) -> list[Volume]:
        return [replace(v, accepting=v.name not in self.blocked) for v in self.volumes]

    def _retention_pass(self, writer: CatalogWriter, executor: Executor, spools: list[Path],
                        busy: Callable[[], set[Path]]) -> None:
        now_ms = self.clock.wall_ms()
        state = PassState()
        with writer.reader() as conn:
            run_pass(conn, self.config, self.volumes, executor, now_ms, state, spools, busy())
            forecast.check(conn, self.config, self.volumes, now_ms)
        self.exports.purge_expired(now_ms)  # bundles in [export] dir are footage too
        self._set_blocked(state.blocked)

    def _pressure_check(self, writer: CatalogWriter, executor: Executor) -> None:
        if not self._pressure_lock.acquire(blocking=False):
            return  # the other trigger is at it
        try:
            with writer.reader() as conn:
                state = run_pressure(conn, self.config, self.volumes, executor,
                                     self.clock.wall_ms())
            self._set_blocked(state.blocked)
        finally:
            self._pressure_lock.release()

    def _watch_free_space(self, writer: CatalogWriter, executor: Executor) -> None:
        """Between the 30-second checks: a statvfs per volume (microseconds), and the full
        pressure check at once when one is under its reserve — a small disk fills fast."""
        self._report_low_filesystems()
        settings = {v.name: v for v in self.config.storage.volumes}
        for volume in self.volumes:
            usage = volume_usage(volume) if volume.available else None
            if usage and usage[1] < settings[volume.name].reserve_bytes(usage[0]):
                self._pressure_check(writer, executor)
                return

    def _report_low_filesystems(self) -> None:
        """The catalog's and the spool's filesystems, when no volume covers them."""
        paths = {"catalog": self.config.storage.catalog.parent,
                 "spool": self.supervisor.recorders_spool}
        low = low_filesystems({k: p for k, p in paths.items() if p.exists()}, self.volumes)
        for what in low.keys() - self.low_filesystems:
            log.error("storage.disk_low", what=what, path=str(paths[what]), free_bytes=low[what])
        for what in self.low_filesystems - low.keys():
            log.info("storage.disk_ok", what=what, path=str(paths[what]))
        self.low_filesystems = set(low)

    def _set_blocked(self, blocked: dict[str, int]) -> None:
        for name, need in blocked.items():
            if name not in self.blocked:
                log.error("held_footage_blocking", volume=name, need_bytes=need)
        for name in self.blocked - set(blocked):
            log.info("volume.accepting", volume=name)
        self.blocked = set(blocked)
        self._follow_target()

    def _follow_target(self) -> None:
        """Recorders write where new footage goes: a spool on a volume full of held footage
        would fill it to ENOSPC, so the spool moves with the target (the old one drains)."""
        spool, _ = spool_dirs(self.config, self.writable_volumes())
        if spool == self.supervisor.recorders_spool or self.config.storage.spool is not None:
            return
        if spool not in self.ingestor.spools:
            self.ingestor.spools.append(spool)
        self.supervisor.move_spool(spool)

    def _check_volumes(self, writer: CatalogWriter) -> None:
        before = {v.name: v.available for v in self.volumes}
        self.volumes = open_volumes(self.config, writer, self.clock.wall_ms())
        returned = False
        for volume in self.volumes:
            if before.get(volume.name) != volume.available:
                level = log.info if volume.available else log.error
                level("volume.state", volume=volume.name, state=volume.state,
                      reason=volume.reason, path=str(volume.path))
                returned |= volume.available and volume.name in before
        if returned:
            recover(writer, self.volumes)  # intents that waited for this disk

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("daemon.signal", signal=signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


def _job_failed(event: JobExecutionEvent) -> None:
    if event.exception is not None:
        log.error("scheduler.job_failed", job=event.job_id, error=repr(event.exception))
    else:
        log.warning("scheduler.job_missed", job=event.job_id)
