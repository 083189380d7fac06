"""`ccvault run`: take the daemon lock, build the parts (`parts.build`), start them in order,
serve signals, stop cleanly.

Start-up order matters: one daemon per catalog (the lock); the catalog, volumes, recovery and
reconcile before anything records (`parts.build`); the HTTP API before the recorders (a taken
port fails start-up before cameras are opened); then recorders, ingest, motion analysis, the
scrub and the scheduled jobs. A reload is forwarded to each part's `apply(config)`. A
PostgreSQL catalog out of reach at start does not keep the cameras waiting
(`waiting.record_until_reachable`).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time
from types import FrameType

import structlog

from ccvault.catalog.audit_checkpoints import CheckpointKind
from ccvault.catalog.writer import CatalogGone
from ccvault.config.loading import LoadedConfig
from ccvault.config.model import Config
from ccvault.config.secrets import check_secrets
from ccvault.errors import CcvaultError, ConfigError
from ccvault.host import descriptors, events, threads
from ccvault.host.clock import Clock, SystemClock
from ccvault.host.events import Event, emit
from ccvault.host.lock import take_daemon_lock
from ccvault.host.sdnotify import Notifier
from ccvault.service import reload
from ccvault.service.metrics import Metrics
from ccvault.service.node import check_reload
from ccvault.service.parts import Parts, Shared, build, sign_audit_chain
from ccvault.service.waiting import record_until_reachable

log = structlog.get_logger("ccvault.daemon")

SIGNAL_CHECK_S = 0.5  # how late a signal another thread received is heard, at worst


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
        self._stop_signal: str | None = None  # the signal that stopped it, logged by main

    @property
    def config(self) -> Config:
        return self.loaded.config

    def run(self) -> int:
        check_secrets(self.config, self.loaded.path, credentials=True)
        # Before anything opens a file; the HTTP server checks its share at start.
        log.info("daemon.open_files", limit=descriptors.raise_soft_limit())
        lock_fd = take_daemon_lock(self.config.lock_base, self.config.node.name)
        try:
            self._install_signals()  # a stop while the catalog is out of reach is heard too
            if not record_until_reachable(self.config, self.clock, self.stopping):
                self._log_signal()
                log.info("daemon.stopped", catalog="never reached")
                return 0
            parts = build(
                Shared(self.loaded, self.clock, self.metrics, self.notifier, self.stopping)
            )
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

    # -- starting, serving, stopping --------------------------------------------------------

    def _start(self, parts: Parts) -> None:
        parts.alerts.dispatcher.start()
        parts.exports.resume()  # exports a restart left are run again
        parts.api.start()  # before recording: a taken port fails start-up at once
        for source in parts.sources:
            source.start()  # access events: a followed file, an MQTT subscription
        if parts.publisher is not None:
            parts.publisher.start()
        loops = {
            "supervisor": parts.footage.supervisor.run,
            "ingest": parts.footage.ingestor.run,
            "motion": parts.motion.run,
            "scrub": parts.scrubber.run,
        }
        parts.threads = {name: threads.Thread(target=run, name=name) for name, run in loops.items()}
        for thread in parts.threads.values():
            thread.start()
        parts.jobs.start()
        self._install_signals()
        parts.checks.slow()
        parts.checks.check()
        log.info("daemon.ready", volumes={v.name: v.state for v in parts.volumes.current()})
        self.notifier.ready(parts.checks.status_line())
        self.notifier.start_watchdog(lambda: self._stale_loops(parts), self.stopping)

    def _serve(self, parts: Parts) -> None:
        """The main thread waits for signals; a reload runs here, never in a handler.

        The wait ends every SIGNAL_CHECK_S as well. The kernel may give a signal sent to the
        process to any of its threads; CPython's C handler, run there, only notes it, and the
        Python handler runs once the main thread runs Python again. Blocked in a wait with no
        timeout, it never did: that SIGTERM went unheard until systemd's SIGKILL, open
        segments and all (seen in about one stop in a hundred, under load)."""
        while not self.stopping.is_set():
            self._wake.wait(SIGNAL_CHECK_S)
            self._wake.clear()
            if self._reload_requested.is_set() and not self.stopping.is_set():
                self._reload_requested.clear()
                self._reload(parts)

    def _stop(self, parts: Parts) -> None:
        """Recorders close their open segments, which are ingested before the end; what is
        not analysed or exported yet waits in the catalog for the next start."""
        self._log_signal()
        log.info("daemon.stopping")
        self.notifier.stopping()
        parts.footage.live.close()  # live viewers' bodies end: the server can stop at once
        parts.api.stop()
        for source in parts.sources:
            source.stop()  # what it had read is stored; the rest is read at the next start
        parts.jobs.stop()  # a running pass stops at its next batch
        parts.exports.stop()  # a job cut off here is run again at the next start
        for name, stop in (
            ("supervisor", parts.footage.supervisor.stop),
            ("ingest", parts.footage.ingestor.stop),
        ):
            stop()
            parts.threads[name].join()
        parts.footage.live.stop()  # the recorders are gone: their pipes are at their end
        try:
            parts.footage.ingestor.scan()  # the segments the recorders just closed
        except CcvaultError as exc:  # e.g. no volume: they stay in the spool for next start
            log.error("daemon.final_scan_failed", error=str(exc))
        for name, stop in (("motion", parts.motion.stop), ("scrub", parts.scrubber.stop)):
            stop()
            parts.threads[name].join()
        try:
            sign_audit_chain(parts.writer, CheckpointKind.STOP, self.clock)  # all of it signed
        except CatalogGone as exc:  # the hourly checkpoint and the head still vouch for it
            log.error("audit.checkpoint_failed", error=exc.problem)
        if parts.publisher is not None:
            parts.publisher.stop()  # `offline`, retained

    def _stale_loops(self, parts: Parts) -> list[str]:
        """Work loops that made no progress lately; while any, systemd's watchdog is starved.
        New footage is not required: cameras all down is an alert, not a hung daemon."""
        limit = max(60.0, 3 * self.config.recording.rescan_seconds)
        now = time.monotonic()
        beats = {
            "supervisor": parts.footage.supervisor.heartbeat,
            "ingest": parts.footage.ingestor.heartbeat,
            "scheduler": parts.jobs.heartbeat,
        }
        dead = [name for name, t in parts.threads.items() if name in beats and not t.is_alive()]
        return sorted({*dead, *(name for name, at in beats.items() if now - at > limit)})

    # -- signals and reload -----------------------------------------------------------------

    def _install_signals(self) -> None:
        """The handlers only note and wake: one runs on the main thread between two bytecodes,
        perhaps inside a log call, where structlog's writer holds a lock that is not
        reentrant; a handler that logged would wait for it forever, and a SIGTERM would hang
        the daemon until systemd killed it. The main thread logs the signal (`_log_signal`)."""

        def stop(signum: int, _frame: FrameType | None) -> None:
            self._stop_signal = signal.Signals(signum).name
            self.stopping.set()
            self._wake.set()

        def reload_later(_signum: int, _frame: FrameType | None) -> None:
            self._reload_requested.set()
            self._wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload_later)
        # A daemon that does not stop or make progress tells where each thread is, in the
        # journal, without a debugger: `systemctl kill -s USR1 ccvault`. faulthandler writes
        # from its C handler, so a main thread that never runs Python code again still answers.
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    def _log_signal(self) -> None:
        if self._stop_signal is not None:
            log.info("daemon.signal", signal=self._stop_signal)

    def _reload(self, parts: Parts) -> None:
        """SIGHUP: apply a valid new config as a whole, or keep the running one as a whole."""
        self.notifier.reloading()
        path, writer = self.loaded.path, parts.writer
        log.info("config.reloading", config=str(path))
        try:
            writer.check()  # a reload is audited: not while the catalog is gone
        except CatalogGone as exc:
            log.error("config.reload_refused", error=exc.problem)
            self.notifier.ready(parts.checks.status_line())
            return
        try:
            loaded = reload.load_new(self.config, path)
            check_reload(loaded.config, writer, path)  # no camera or volume of another node
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
