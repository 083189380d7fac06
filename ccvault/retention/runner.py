"""Retention in the daemon: the routine pass, the pressure check, the free-space watch and
the retry of legal holds the object store did not take.

The first three are scheduled by the daemon; this part owns what they share — the executor, the
lock that keeps two pressure checks from running at once, and which filesystems without a
volume (the catalog's, the spool's) were last seen under a reserve. What pressure finds
(volumes it cannot free enough) goes to the `VolumeSet`, its owner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.host.events import Event, emit
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.retention.executor import Executor, PurgeCounters
from ccvault.retention.locks import lock_dates, retry_legal_holds
from ccvault.retention.passes import PassState, run_pass, run_pressure
from ccvault.retention.pressure import low_filesystems
from ccvault.storage.volumes import Blocked, VolumeSet, usage

log = structlog.get_logger("ccvault.retention")


class RetentionRunner:
    def __init__(
        self,
        config: Config,
        writer: CatalogWriter,
        volumes: VolumeSet,
        now_ms: Callable[[], int],
        stopping: threading.Event,
        spools: Callable[[], list[Path]],
        busy: Callable[[], set[Path]],
        recording_spool: Callable[[], Path],
        on_blocked: Callable[[], None],
        counters: PurgeCounters | None = None,
        on_success: Callable[[int], None] = lambda _ms: None,
    ) -> None:
        self.config, self.writer, self.volumes, self.now_ms = config, writer, volumes, now_ms
        self.stopping = stopping
        self.spools, self.busy, self.recording_spool = spools, busy, recording_spool
        self.on_blocked = on_blocked  # new footage may have to go elsewhere now
        self.on_success = on_success
        self.executor = Executor(
            writer,
            volumes.current,
            now_ms,
            ffmpeg_binary(config),
            stopping=stopping,
            metrics=counters,
            lock_until=lock_dates(config),
        )
        self._pressure_lock = threading.Lock()
        self.low_filesystems: set[str] = set()

    def routine(self) -> None:
        """The routine pass: every rule, then quotas, then pressure; leftovers past the
        ceiling. A failed action is the `purge_failed` event."""
        if self.writer.gone:
            return  # catalog_error says it; nothing is planned on a catalog not there
        state = PassState()
        with self.writer.reader() as conn:
            outcome = run_pass(
                conn,
                self.config,
                self.volumes.current(),
                self.executor,
                self.now_ms(),
                state,
                self.spools(),
                self.busy(),
            )
        self._blocked(state.blocked)
        if outcome.failed:
            emit(
                Event(
                    "purge_failed",
                    f"{outcome.failed} retention action(s) failed in the "
                    "last pass (see the retention.pass and *.failed log events)",
                    {},
                    {"failed": str(outcome.failed), "deleted": str(outcome.deleted)},
                )
            )
        elif not self.stopping.is_set():
            self.on_success(self.now_ms())

    def pressure(self) -> None:
        """The 30-second check: free what volumes under their reserve need, nothing else."""
        if self.writer.gone or not self._pressure_lock.acquire(blocking=False):
            return  # the catalog is gone (catalog_error), or the other trigger is at it
        try:
            with self.writer.reader() as conn:
                state = run_pressure(
                    conn, self.config, self.volumes.current(), self.executor, self.now_ms()
                )
            self._blocked(state.blocked)
        finally:
            self._pressure_lock.release()

    def watch_free_space(self) -> None:
        """Between the 30-second checks: a statvfs per volume (microseconds), and the full
        pressure check at once when one is under its reserve — a small disk fills fast."""
        self._report_low_filesystems()
        settings = {v.name: v for v in self.config.storage.volumes}
        for volume in self.volumes.current():
            if volume.name in self.volumes.blocked:
                continue  # freed all it may: the 30-second check looks again
            sizes = usage(volume) if volume.available else None
            if sizes and sizes[1] < settings[volume.name].reserve_bytes(sizes[0]):
                self.pressure()
                return

    def legal_holds(self) -> None:
        """Legal hold changes still to make on their objects (the endpoint was away), each
        when its backoff is over: a hold always ends up on the object."""
        if not self.writer.gone:
            retry_legal_holds(self.writer, self.config, self.now_ms())

    def failed(self, job: str, exc: BaseException) -> None:
        """A pass that raised is the `purge_failed` event too (one that found the catalog gone
        is not: `Jobs` says so, and catalog_error)."""
        emit(Event("purge_failed", f"the {job} pass failed: {exc}", {}, {"job": job}))

    def apply(self, config: Config) -> None:
        self.config = config
        self.executor.ffmpeg = ffmpeg_binary(config)
        self.executor.lock_until = lock_dates(config)

    def _blocked(self, blocked: dict[str, Blocked]) -> None:
        self.volumes.set_blocked(blocked)
        self.on_blocked()

    def _report_low_filesystems(self) -> None:
        """The catalog's and the spool's filesystems, when no volume covers them."""
        paths = {"catalog": self.config.state_dir, "spool": self.recording_spool()}
        low = low_filesystems(
            {k: p for k, p in paths.items() if p.exists()}, self.volumes.current()
        )
        for what in low.keys() - self.low_filesystems:
            log.error("storage.disk_low", what=what, path=str(paths[what]), free_bytes=low[what])
        for what in self.low_filesystems - low.keys():
            log.info("storage.disk_ok", what=what, path=str(paths[what]))
        self.low_filesystems = set(low)
