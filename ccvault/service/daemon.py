"""`ccvault run`: the composition root — build the parts, start them in order, stop cleanly.

Start-up order matters: take the daemon lock (one daemon per catalog), open and migrate the
catalog, check the volumes, finish interrupted file operations (intents) and analyses, then
reconcile (so footage left by a crash is ingested before any new recording starts), start the
HTTP API (a taken port fails start-up before cameras are opened), then the recorders, ingest,
motion analysis, the scrub and the scheduled jobs. State lives in the part that owns it; the
daemon only wires them and forwards a reload to each part's `apply(config)`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

import structlog

from ccvault import __version__
from ccvault.alerts.channels import build_channels
from ccvault.alerts.dispatcher import Dispatcher
from ccvault.alerts.manager import AlertManager
from ccvault.api.context import ApiContext
from ccvault.api.server import ApiServer
from ccvault.catalog.audit import AuditLog
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import LoadedConfig
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
from ccvault.ingest.spool import Ingestor, SpoolRouter
from ccvault.motion.scheduler import MotionScheduler, default_workers, reset_interrupted
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.recorder.states import CameraState
from ccvault.recorder.supervisor import Supervisor
from ccvault.retention.executor import recover
from ccvault.retention.runner import RetentionRunner
from ccvault.service import jobs as timing
from ccvault.service import reload
from ccvault.service.checks import HealthChecks
from ccvault.service.jobs import Job, Jobs, every
from ccvault.service.metrics import Metrics
from ccvault.storage.integrity import Scrubber
from ccvault.storage.store import SegmentStore
from ccvault.storage.volumes import VolumeSet, spool_dirs

log = structlog.get_logger("ccvault.daemon")


@dataclass
class Parts:
    """Everything the daemon built, so start, reload and stop can reach it."""

    writer: CatalogWriter
    volumes: VolumeSet
    store: SegmentStore
    supervisor: Supervisor
    ingestor: Ingestor
    router: SpoolRouter
    alerts: AlertManager
    exports: ExportJobs
    api_context: ApiContext
    api: ApiServer
    motion: MotionScheduler
    scrubber: Scrubber
    retention: RetentionRunner
    checks: HealthChecks
    jobs: Jobs | None = None
    threads: dict[str, threading.Thread] = field(default_factory=dict)

    def appliers(self) -> list[Callable[[Config], None]]:
        """Who takes a reloaded config, in this order (volumes last: it re-checks disks)."""
        assert self.jobs is not None
        return [
            self.exports.apply,
            self.api_context.apply,
            self.motion.apply,
            self.scrubber.apply,
            lambda c: self.alerts.apply(c.alerts),
            self.jobs.apply,
            self.retention.apply,
            self.checks.apply,
            self.router.apply,
            self.supervisor.apply,
            self.volumes.apply,
        ]


class Daemon:
    def __init__(
        self, loaded: LoadedConfig, clock: Clock | None = None, notifier: Notifier | None = None
    ) -> None:
        self.loaded = loaded
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(key, None)  # ffmpeg and the workers must not speak for the daemon
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self._wake = threading.Event()  # the main thread's: a signal arrived
        self._reload_requested = threading.Event()

    @property
    def config(self) -> Config:
        return self.loaded.config

    def run(self) -> int:
        check_secrets(self.config, self.loaded.path, credentials=True)
        lock_fd = take_daemon_lock(self.config.storage.catalog)
        try:
            parts = self._build()
            unlisten = events.listen(lambda e: parts.alerts.raise_event(e, self.clock.wall_ms()))
            self._start(parts)
            self._serve(parts)
            self._stop(parts)
            unlisten()
            parts.alerts.dispatcher.stop()
            parts.writer.close()
        finally:
            os.close(lock_fd)
        log.info("daemon.stopped")
        return 0

    # -- building ---------------------------------------------------------------------------

    def _build(self) -> Parts:
        config, clock = self.config, self.clock
        audit_log = AuditLog(config.audit_path)
        writer = CatalogWriter(config.storage.catalog, audit_log)
        log.info(
            "daemon.starting",
            version=__version__,
            config=str(self.loaded.path),
            catalog=str(config.storage.catalog),
            cameras=len(config.cameras),
        )
        for warning in self.loaded.warnings:
            log.warning("config.warning", detail=warning)
        writer.cameras.ensure(c.name for c in config.cameras)
        volumes = VolumeSet(config, writer, clock.wall_ms, on_return=lambda v: recover(writer, v))
        volumes.refresh()
        # Intents first: a half-done purge must finish before reconcile could adopt its file.
        recovered = recover(writer, volumes.current())
        analyses = reset_interrupted(writer)
        writer.record_event(
            "daemon",
            "daemon.start",
            "daemon",
            {
                "version": __version__,
                "config": str(self.loaded.path),
                "cameras": [c.name for c in config.cameras],
                "intents_recovered": recovered,
                "analyses_reset": analyses,
            },
            clock.wall_ms(),
        )
        parts = self._recording(writer, volumes)
        parts.jobs = self._jobs(parts)
        return parts

    def _recording(self, writer: CatalogWriter, volumes: VolumeSet) -> Parts:
        """The footage path (recorders → spool → store), reconciled before anything records,
        then the parts that serve and keep it."""
        config, clock = self.config, self.clock
        store = SegmentStore(writer, volumes.writable, clock, self.metrics)
        spools = spool_dirs(config, volumes.current())
        log.info("daemon.spool", spool=str(spools.record))

        def save_state(camera: str, state: CameraState, since_ms: int, reason: str) -> None:
            writer.cameras.set_state(camera, str(state), since_ms, reason)

        supervisor = Supervisor(config, spools.record, clock, save_state, lambda: ingestor.wake())
        ingestor = Ingestor(store, spools.drain, supervisor.active_runs)
        reconcile(writer, store, volumes.current(), ingestor, dry_run=False, daemon_running=False)
        router = SpoolRouter(config, volumes, ingestor, supervisor.move_spool, spools.record)
        alerts = AlertManager(
            config.alerts,
            writer,
            Dispatcher(build_channels(config.alerts)),
            clock.wall_ms(),
            config.recording.offline_after_seconds + 2 * config.alerts.check_seconds,
        )
        exports = ExportJobs(config, writer, volumes.current, clock, ffmpeg_binary(config))
        api_context = ApiContext(config, writer, clock, volumes.current, exports, self.metrics)
        retention = RetentionRunner(
            config,
            writer,
            volumes,
            clock.wall_ms,
            self.stopping,
            lambda: ingestor.spools,
            supervisor.active_runs,
            lambda: supervisor.recorders_spool,
            router.follow,
            self.metrics,
            self.metrics.purge_succeeded,
        )
        checks = HealthChecks(
            config,
            writer,
            volumes,
            store,
            lambda: supervisor.recorders.values(),
            alerts,
            self.metrics,
            self.notifier,
            writer.audit_log or AuditLog(config.audit_path),
            clock,
        )
        return Parts(
            writer,
            volumes,
            store,
            supervisor,
            ingestor,
            router,
            alerts,
            exports,
            api_context,
            ApiServer(api_context),
            MotionScheduler(
                config, writer, volumes.current, config.motion.workers or default_workers()
            ),
            Scrubber(writer, volumes.current, clock, config.integrity.scrub_mb_per_s),
            retention,
            checks,
        )

    def _jobs(self, parts: Parts) -> Jobs:
        retention, checks, now = parts.retention, parts.checks, self.clock.wall_ms
        return Jobs(
            [
                Job("spool_rescan", parts.ingestor.wake, lambda c: c.recording.rescan_seconds),
                Job("health", checks.check, lambda c: c.alerts.check_seconds),
                Job("slow_checks", checks.slow, every(timing.SLOW_CHECKS_S)),
                # Its first run reads the whole audit log (~40 µs a record, bench/service.py): in
                # the scheduler's pool after start-up, never in the way of READY=1.
                Job("audit_check", checks.audit, every(timing.SLOW_CHECKS_S), first_after_s=0),
                Job(
                    "retention",
                    retention.routine,
                    every(timing.RETENTION_EVERY_S),
                    first_after_s=timing.RETENTION_FIRST_S,
                    on_failure=retention.failed,
                ),
                Job(
                    "pressure",
                    retention.pressure,
                    every(timing.PRESSURE_EVERY_S),
                    first_after_s=0,
                    on_failure=retention.failed,
                ),
                Job(
                    "free_space_watch", retention.watch_free_space, every(timing.FREE_SPACE_WATCH_S)
                ),
                # Bundles in [export] dir are footage too: they expire after keep_days.
                Job(
                    "export_expiry",
                    lambda: parts.exports.purge_expired(now()),
                    every(timing.EXPORT_EXPIRY_S),
                    first_after_s=timing.RETENTION_FIRST_S,
                ),
            ],
            self.config,
        )

    # -- starting, serving, stopping --------------------------------------------------------

    def _start(self, parts: Parts) -> None:
        parts.alerts.dispatcher.start()
        parts.exports.resume()  # exports a restart left are run again
        parts.api.start()  # before recording: a taken port fails start-up at once
        loops = {
            "supervisor": parts.supervisor.run,
            "ingest": parts.ingestor.run,
            "motion": parts.motion.run,
            "scrub": parts.scrubber.run,
        }
        parts.threads = {
            name: threading.Thread(target=run, name=name) for name, run in loops.items()
        }
        for thread in parts.threads.values():
            thread.start()
        assert parts.jobs is not None
        parts.jobs.start()
        self._install_signals()
        parts.checks.slow()
        parts.checks.check()
        log.info("daemon.ready", volumes={v.name: v.state for v in parts.volumes.current()})
        self.notifier.ready(parts.checks.status_line())
        self.notifier.start_watchdog(lambda: self._stale_loops(parts), self.stopping)

    def _serve(self, parts: Parts) -> None:
        """The main thread waits for signals; a reload runs here, never in a handler."""
        while not self.stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._reload_requested.is_set() and not self.stopping.is_set():
                self._reload_requested.clear()
                self._reload(parts)

    def _stop(self, parts: Parts) -> None:
        """Recorders close their open segments, which are ingested before the end; what is
        not analysed or exported yet waits in the catalog for the next start."""
        log.info("daemon.stopping")
        self.notifier.stopping()
        parts.api.stop()
        assert parts.jobs is not None
        parts.jobs.stop()  # a running pass stops at its next batch
        parts.exports.stop()  # a job cut off here is run again at the next start
        for name, stop in (("supervisor", parts.supervisor.stop), ("ingest", parts.ingestor.stop)):
            stop()
            parts.threads[name].join()
        try:
            parts.ingestor.scan()  # the segments the recorders just closed
        except CcvaultError as exc:  # e.g. no volume: they stay in the spool for next start
            log.error("daemon.final_scan_failed", error=str(exc))
        for name, stop in (("motion", parts.motion.stop), ("scrub", parts.scrubber.stop)):
            stop()
            parts.threads[name].join()

    def _stale_loops(self, parts: Parts) -> list[str]:
        """Work loops that made no progress lately; while any, systemd's watchdog is starved.
        New footage is not required: cameras all down is an alert, not a hung daemon."""
        limit = max(60.0, 3 * self.config.recording.rescan_seconds)
        now = time.monotonic()
        assert parts.jobs is not None
        beats = {
            "supervisor": parts.supervisor.heartbeat,
            "ingest": parts.ingestor.heartbeat,
            "scheduler": parts.jobs.heartbeat,
        }
        dead = [name for name, t in parts.threads.items() if name in beats and not t.is_alive()]
        return sorted({*dead, *(name for name, at in beats.items() if now - at > limit)})

    # -- signals and reload -----------------------------------------------------------------

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("daemon.signal", signal=signal.Signals(signum).name)
            self.stopping.set()
            self._wake.set()

        def reload_later(_signum: int, _frame: FrameType | None) -> None:
            self._reload_requested.set()
            self._wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload_later)

    def _reload(self, parts: Parts) -> None:
        """SIGHUP: apply a valid new config as a whole, or keep the running one as a whole."""
        self.notifier.reloading()
        path, writer = self.loaded.path, parts.writer
        log.info("config.reloading", config=str(path))
        try:
            loaded = reload.load_new(self.config, path)
        except ConfigError as exc:
            log.error("config.rejected", error=str(exc))
            writer.record_event(
                "daemon", "config.rejected", "config", {"error": str(exc)}, self.clock.wall_ms()
            )
            emit(
                Event(
                    "config_rejected",
                    f"config reload rejected, the running config is kept: {exc}",
                    {},
                    {"config": str(path)},
                )
            )
        else:
            changes = reload.changes(self.config, loaded.config)
            for warning in loaded.warnings:
                log.warning("config.warning", detail=warning)
            writer.cameras.ensure(c.name for c in loaded.config.cameras)
            self.loaded = loaded
            for apply in parts.appliers():  # unchanged cameras record on, untouched
                apply(loaded.config)
            writer.record_event(
                "daemon",
                "config.reload",
                "config",
                {"config": str(path), **changes},
                self.clock.wall_ms(),
            )
            log.info("config.reloaded", **changes)
        self.notifier.ready(parts.checks.status_line())
