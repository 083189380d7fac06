"""`ccvault run`: wiring only — build the parts, reconcile, start the loops, stop cleanly.

Start-up order matters: take the daemon lock (one daemon per catalog), open and migrate the
catalog, check the volumes, reconcile (so footage left by a crash is ingested before any new
recording starts), then start recorders, ingest, motion analysis and the scheduler.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from ccvault import __version__
from ccvault.alerts.channels import Dispatcher, build_channels
from ccvault.alerts.manager import AlertManager
from ccvault.api.context import ApiContext
from ccvault.api.server import ApiServer
from ccvault.catalog import queries
from ccvault.catalog.audit import AuditCursor, AuditLog
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import LoadedConfig, load
from ccvault.config.model import Config
from ccvault.config.secrets import check_secrets
from ccvault.errors import CcvaultError, ConfigError
from ccvault.evidence.jobs import ExportJobs
from ccvault.host import events
from ccvault.host.clock import Clock, SystemClock
from ccvault.host.events import Event, emit
from ccvault.host.lock import take_daemon_lock
from ccvault.host.sdnotify import Notifier
from ccvault.ingest.reconcile import reconcile
from ccvault.ingest.spool import Ingestor
from ccvault.motion.scheduler import MotionScheduler, default_workers
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.recorder.states import CameraState
from ccvault.recorder.supervisor import Supervisor
from ccvault.retention import forecast
from ccvault.retention.executor import Executor, recover
from ccvault.retention.passes import PassState, run_pass, run_pressure
from ccvault.retention.pressure import low_filesystems
from ccvault.service.metrics import Metrics
from ccvault.storage.integrity import Scrubber
from ccvault.storage.store import SegmentStore
from ccvault.storage.volumes import Volume, open_volumes, spool_dirs
from ccvault.storage.volumes import usage as volume_usage
from ccvault.views import health
from ccvault.views.health import Health

log = structlog.get_logger("ccvault.service.daemon")

RETENTION_EVERY_S = 300
RETENTION_FIRST_S = 15
PRESSURE_EVERY_S = 30
FREE_SPACE_WATCH_S = 2
SLOW_CHECKS_S = 60  # forecast (headroom), clock sync; the audit chain's new lines
SCHEDULER_BEAT_S = 5
DAY_MS = 86_400_000
# Settings read once at start-up: a reload that changes them is rejected as a whole.
RESTART_ONLY = ("storage.catalog", "storage.spool", "audit.path", "http.listen",
                "http.tls_cert", "http.tls_key", "motion.workers")


class Daemon:
    def __init__(self, loaded: LoadedConfig, clock: Clock | None = None,
                 notifier: Notifier | None = None) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(key, None)  # ffmpeg and the workers must not speak for the daemon
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self._wake = threading.Event()  # the main thread's: a signal arrived
        self._reload_requested = threading.Event()
        self.volumes: list[Volume] = []
        self.blocked: dict[str, int] = {}  # full of held footage: no new segments there
        self._pressure_lock = threading.Lock()
        self.low_filesystems: set[str] = set()  # catalog/spool filesystems under a reserve
        self.forecast: dict | None = None  # the latest forecast report (headroom)
        self.clock_synced: bool | None = None
        self.audit_cursor = AuditCursor()
        self.audit_error: str | None = None
        self.scheduler_beat = time.monotonic()
        self.last_health: Health | None = None

    def run(self) -> int:
        config = self.config
        check_secrets(config, self.loaded.path, credentials=True)
        lock_fd = take_daemon_lock(config.storage.catalog)
        self.audit_log = AuditLog(config.audit_path)
        writer = CatalogWriter(config.storage.catalog, self.audit_log)
        log.info("daemon.starting", version=__version__, config=str(self.loaded.path),
                 catalog=str(config.storage.catalog), cameras=len(config.cameras))
        for warning in self.loaded.warnings:
            log.warning("config.warning", detail=warning)
        writer.cameras.ensure(c.name for c in config.cameras)
        self._check_volumes(writer)
        # Intents first: a half-done purge must finish before reconcile could adopt its file.
        recovered = recover(writer, self.volumes)
        writer.record_event("daemon", "daemon.start", "daemon",
                            {"version": __version__, "config": str(self.loaded.path),
                             "cameras": [c.name for c in config.cameras],
                             "intents_recovered": recovered}, self.clock.wall_ms())
        self.store = store = SegmentStore(writer, self.writable_volumes, self.clock,
                                          self.metrics)
        spool, spools = spool_dirs(config, self.volumes)
        log.info("daemon.spool", spool=str(spool))
        def save_state(camera: str, state: CameraState, since_ms: int, reason: str) -> None:
            writer.cameras.set_state(camera, str(state), since_ms, reason)

        supervisor = Supervisor(config, spool, self.clock, save_state, lambda: ingestor.wake())
        ingestor = Ingestor(store, spools, supervisor.active_runs)
        self.supervisor, self.ingestor = supervisor, ingestor
        reconcile(writer, store, self.volumes, ingestor, dry_run=False, daemon_running=False)
        self.alerts = AlertManager(
            lambda: self.config.alerts, writer, Dispatcher(build_channels(config.alerts)),
            self.clock.wall_ms(), config.recording.offline_after_seconds
            + 2 * config.alerts.check_seconds)
        self.alerts.dispatcher.start()
        unlisten = events.listen(lambda e: self.alerts.raise_event(e, self.clock.wall_ms()))
        # Exports left by a restart run again; the HTTP API starts before recording so a
        # taken port fails start-up at once, not after cameras were opened.
        self.exports = ExportJobs(config, writer, lambda: self.volumes, self.clock,
                                  ffmpeg_binary(config))
        self.exports.resume()
        self.api_context = ApiContext(config, writer, self.clock, lambda: self.volumes,
                                      self.exports, self.metrics)
        api = ApiServer(self.api_context)
        api.start()

        self.scheduler = scheduler = self._scheduler(writer, spools)
        self.motion = motion = MotionScheduler(config, writer, lambda: self.volumes,
                                               config.motion.workers or default_workers())
        self.scrubber = scrubber = Scrubber(writer, lambda: self.volumes, self.clock,
                                            config.integrity.scrub_mb_per_s)
        threads = [threading.Thread(target=supervisor.run, name="supervisor"),
                   threading.Thread(target=ingestor.run, name="ingest"),
                   threading.Thread(target=motion.run, name="motion"),
                   threading.Thread(target=scrubber.run, name="scrub")]
        self.threads = {t.name: t for t in threads}
        for thread in threads:
            thread.start()
        scheduler.start()
        self._install_signals()
        self._slow_checks(writer)
        self._check_health(writer)
        log.info("daemon.ready", volumes={v.name: v.state for v in self.volumes})
        self.notifier.ready(self._status_line())
        self.notifier.start_watchdog(self._stale_loops, self.stopping)
        self._serve(writer)

        log.info("daemon.stopping")
        self.notifier.stopping()
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
        unlisten()
        self.alerts.dispatcher.stop()
        writer.close()
        os.close(lock_fd)
        log.info("daemon.stopped")
        return 0

    def _scheduler(self, writer: CatalogWriter, spools: list[Path]) -> BackgroundScheduler:
        config = self.config
        scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone="UTC",
        )
        scheduler.add_listener(self._job_failed, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        scheduler.add_job(self.ingestor.wake, "interval",
                          seconds=config.recording.rescan_seconds, id="spool_rescan")
        scheduler.add_job(self._check_health, "interval", args=(writer,),
                          seconds=config.alerts.check_seconds, id="health")
        scheduler.add_job(self._slow_checks, "interval", args=(writer,),
                          seconds=SLOW_CHECKS_S, id="slow_checks")
        # Its first run reads the whole audit log (~40 µs a record, bench/service.py): in the
        # scheduler's pool after start-up, never in the way of READY=1.
        scheduler.add_job(self._check_audit, "interval", seconds=SLOW_CHECKS_S,
                          id="audit_check", next_run_time=datetime.now(UTC))
        scheduler.add_job(self._beat, "interval", seconds=SCHEDULER_BEAT_S, id="heartbeat")
        executor = Executor(writer, lambda: self.volumes, self.clock.wall_ms,
                            ffmpeg_binary(config), stopping=self.stopping, metrics=self.metrics)
        soon = datetime.now(UTC) + timedelta(seconds=RETENTION_FIRST_S)
        scheduler.add_job(self._retention_pass, "interval",
                          args=(writer, executor, spools, self.supervisor.active_runs),
                          seconds=RETENTION_EVERY_S, id="retention", next_run_time=soon)
        scheduler.add_job(self._pressure_check, "interval", args=(writer, executor),
                          seconds=PRESSURE_EVERY_S, id="pressure",
                          next_run_time=datetime.now(UTC))
        scheduler.add_job(self._watch_free_space, "interval", args=(writer, executor),
                          seconds=FREE_SPACE_WATCH_S, id="free_space_watch")
        return scheduler

    def _serve(self, writer: CatalogWriter) -> None:
        """The main thread waits for signals; a reload runs here, never in a handler."""
        while not self.stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._reload_requested.is_set() and not self.stopping.is_set():
                self._reload_requested.clear()
                self._reload(writer)

    def writable_volumes(self) -> list[Volume]:
        return [replace(v, accepting=v.name not in self.blocked) for v in self.volumes]

    # -- health: alerts, metrics, systemd status -----------------------------------------

    def _beat(self) -> None:
        self.scheduler_beat = time.monotonic()

    def _stale_loops(self) -> list[str]:
        """Work loops that made no progress lately; while any, systemd's watchdog is starved.
        New footage is not required: cameras all down is an alert, not a hung daemon."""
        limit = max(60.0, 3 * self.config.recording.rescan_seconds)
        now = time.monotonic()
        beats = {"supervisor": self.supervisor.heartbeat, "ingest": self.ingestor.heartbeat,
                 "scheduler": self.scheduler_beat}
        dead = [name for name, t in self.threads.items() if name in beats and not t.is_alive()]
        return sorted({*dead, *(name for name, at in beats.items() if now - at > limit)})

    def _check_health(self, writer: CatalogWriter) -> None:
        self._check_volumes(writer)
        now_ms = self.clock.wall_ms()
        if not (self.forecast or {}).get("bytes_per_day"):
            self._refresh_forecast(writer, now_ms)  # no write rate yet: cheap, and soon known
        recorders = list(self.supervisor.recorders.values())
        try:
            with writer.reader() as conn:
                cameras = health.cameras_health(recorders, conn, time.monotonic())
                corrupt = queries.corrupt_since(conn, now_ms - DAY_MS)
            catalog_error = writer.last_error
        except sqlite3.Error as exc:
            cameras, corrupt, catalog_error = (), {}, f"cannot read the catalog: {exc}"
        report = self.forecast
        snapshot = Health(
            now_ms, health.volumes_health(self.volumes, report), cameras,
            write_errors=dict(self.store.write_errors), blocked=dict(self.blocked),
            at_risk=report if report and report["at_risk"] else None,
            catalog_error=catalog_error, audit_error=self.audit_error, corrupt=corrupt,
            clock_synced=self.clock_synced)
        self.alerts.evaluate(snapshot)
        firing = self.alerts.firing_counts()
        self.metrics.observe(snapshot, firing)
        self.last_health = snapshot
        self.notifier.status(self._status_line())

    def _slow_checks(self, writer: CatalogWriter) -> None:
        """Once a minute: the forecast (headroom), the clock, old alert history."""
        now_ms = self.clock.wall_ms()
        self._refresh_forecast(writer, now_ms)
        self.clock_synced = health.clock_synced(self.config.alerts.clock_sync)
        self.alerts.prune(now_ms)

    def _check_audit(self) -> None:
        """The audit chain: all of it at the first run, then the lines appended since."""
        check, self.audit_cursor = self.audit_log.verify_from(self.audit_cursor)
        self.audit_error = None if check.ok else f"line {check.bad_line}: {check.problem}"

    def _refresh_forecast(self, writer: CatalogWriter, now_ms: int) -> None:
        try:
            with writer.reader() as conn:
                self.forecast = forecast.build(conn, self.config, self.volumes, now_ms)
        except sqlite3.Error as exc:
            log.error("forecast.failed", error=str(exc))

    def _status_line(self) -> str:
        snapshot = self.last_health
        if snapshot is None:
            return "starting"
        return health.status_line(snapshot, self.alerts.firing_counts())

    # -- retention ------------------------------------------------------------------------

    def _retention_pass(self, writer: CatalogWriter, executor: Executor, spools: list[Path],
                        busy: Callable[[], set[Path]]) -> None:
        now_ms = self.clock.wall_ms()
        state = PassState()
        with writer.reader() as conn:
            outcome = run_pass(conn, self.config, self.volumes, executor, now_ms, state,
                               spools, busy())
        self.exports.purge_expired(now_ms)  # bundles in [export] dir are footage too
        self._set_blocked(state.blocked)
        if outcome.failed:
            emit(Event("purge_failed", f"{outcome.failed} retention action(s) failed in the "
                       "last pass (see the retention.pass and *.failed log events)", {},
                       {"failed": str(outcome.failed), "deleted": str(outcome.deleted)}))
        elif not self.stopping.is_set():
            self.metrics.purge_succeeded(self.clock.wall_ms())

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
        for name in self.blocked.keys() - blocked.keys():
            log.info("volume.accepting", volume=name)
        self.blocked = dict(blocked)
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

    # -- signals and reload -------------------------------------------------------------

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("daemon.signal", signal=signal.Signals(signum).name)
            self.stopping.set()
            self._wake.set()

        def reload(_signum: int, _frame: FrameType | None) -> None:
            self._reload_requested.set()
            self._wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _reload(self, writer: CatalogWriter) -> None:
        """SIGHUP: apply a valid new config as a whole, or keep the running one as a whole."""
        self.notifier.reloading()
        path = self.loaded.path
        log.info("config.reloading", config=str(path))
        try:
            loaded = load(path)
            check_secrets(loaded.config, path, credentials=True)
            restart = [k for k in RESTART_ONLY if _get(self.config, k) != _get(loaded.config, k)]
            if restart:
                raise ConfigError(str(path), f"{', '.join(restart)}: only read at start-up "
                                  "(restart the service to change it); nothing was applied")
        except ConfigError as exc:
            log.error("config.rejected", error=str(exc))
            writer.record_event("daemon", "config.rejected", "config", {"error": str(exc)},
                                self.clock.wall_ms())
            emit(Event("config_rejected", f"config reload rejected, the running config is "
                       f"kept: {exc}", {}, {"config": str(path)}))
        else:
            changes = _changes(self.config, loaded.config)
            self._apply(loaded, writer)
            writer.record_event("daemon", "config.reload", "config",
                                {"config": str(path), **changes}, self.clock.wall_ms())
            log.info("config.reloaded", **changes)
        self.notifier.ready(self._status_line())

    def _apply(self, loaded: LoadedConfig, writer: CatalogWriter) -> None:
        old, config = self.config, loaded.config
        for warning in loaded.warnings:
            log.warning("config.warning", detail=warning)
        writer.cameras.ensure(c.name for c in config.cameras)
        self.loaded, self.config = loaded, config
        for part in (self.exports, self.api_context, self.motion):
            part.config = config
        self.scrubber.bytes_per_s = config.integrity.scrub_mb_per_s * 1_000_000
        if (old.alerts.webhook, old.alerts.email) != (config.alerts.webhook, config.alerts.email):
            previous = self.alerts.dispatcher
            self.alerts.dispatcher = Dispatcher(build_channels(config.alerts))
            self.alerts.dispatcher.start()
            previous.stop()
        for job, seconds in (("health", config.alerts.check_seconds),
                             ("spool_rescan", config.recording.rescan_seconds)):
            self.scheduler.reschedule_job(job, trigger="interval", seconds=seconds)
        self.supervisor.reconfigure(config)  # unchanged cameras record on, untouched
        self._check_volumes(writer)

    def _job_failed(self, event: JobExecutionEvent) -> None:
        if event.exception is None:
            log.warning("scheduler.job_missed", job=event.job_id)
            return
        log.error("scheduler.job_failed", job=event.job_id, error=repr(event.exception))
        if event.job_id in ("retention", "pressure"):
            emit(Event("purge_failed", f"the {event.job_id} pass failed: {event.exception}",
                       {}, {"job": event.job_id}))


def _get(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _changes(old: Config, new: Config) -> dict[str, list[str]]:
    """What a reload changes, for its audit record: sections, and cameras by name."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    sections = sorted(k for k in after if k != "cameras" and before.get(k) != after[k])
    was = {c.name: c for c in old.cameras}
    now = {c.name: c for c in new.cameras}
    return {"sections": sections,
            "cameras_added": sorted(now.keys() - was.keys()),
            "cameras_removed": sorted(was.keys() - now.keys()),
            "cameras_changed": sorted(n for n in now.keys() & was.keys() if now[n] != was[n])}
