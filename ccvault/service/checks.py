"""The daemon's health checks: one snapshot every `[alerts] check_seconds`, from which the
alerts, the Prometheus gauges and systemd's STATUS= line are computed, so they always agree.

This part owns what the checks learn more slowly (the forecast, whether the clock is synced,
how far the audit chain is verified) and the latest snapshot.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable

import structlog

from ccvault.access import rules
from ccvault.access import state as access_state
from ccvault.alerts.manager import AlertManager
from ccvault.catalog import queries
from ccvault.catalog.audit import AuditCursor, AuditLog
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.host.clock import Clock
from ccvault.host.sdnotify import Notifier
from ccvault.recorder.camera import CameraRecorder
from ccvault.retention import forecast
from ccvault.service.metrics import Metrics
from ccvault.storage.store import SegmentStore
from ccvault.storage.volumes import VolumeSet
from ccvault.views import health
from ccvault.views.health import Health

log = structlog.get_logger("ccvault.service")

DAY_MS = 86_400_000


class HealthChecks:
    def __init__(
        self,
        config: Config,
        writer: CatalogWriter,
        volumes: VolumeSet,
        store: SegmentStore,
        recorders: Callable[[], Iterable[CameraRecorder]],
        alerts: AlertManager,
        metrics: Metrics,
        notifier: Notifier,
        audit_log: AuditLog,
        clock: Clock,
    ) -> None:
        self.config, self.writer, self.volumes, self.store = config, writer, volumes, store
        self.recorders, self.alerts, self.metrics = recorders, alerts, metrics
        self.notifier, self.audit_log, self.clock = notifier, audit_log, clock
        self.forecast: dict | None = None  # the latest forecast report (headroom)
        self.clock_synced: bool | None = None
        self.audit_cursor = AuditCursor()
        self.audit_error: str | None = None
        self.last: Health | None = None
        self._lock = threading.Lock()  # a requested check may meet a scheduled one
        # Ask for a check in N seconds (the daemon's scheduler): a door event, or a rule's
        # grace running out, is not left for the next tick.
        self.soon: Callable[[float], None] = lambda _s: None

    def check(self) -> None:
        """Every check_seconds (and when asked): volumes again, then the snapshot and what
        follows from it."""
        with self._lock:
            self.volumes.refresh()
            now_ms = self.clock.wall_ms()
            if not (self.forecast or {}).get("bytes_per_day"):
                self._refresh_forecast(now_ms)  # no write rate yet: cheap, and soon known
            snapshot, deadline = self._snapshot(now_ms)
            self.alerts.evaluate(snapshot)
            self.metrics.observe(snapshot, self.alerts.firing_counts())
            self.last = snapshot
            self.notifier.status(self.status_line())
        if deadline is not None:
            self.soon(max(0.0, (deadline - now_ms) / 1000) + 0.05)

    def slow(self) -> None:
        """Once a minute: the forecast (headroom), the clock, old alert history."""
        now_ms = self.clock.wall_ms()
        self._refresh_forecast(now_ms)
        self.clock_synced = health.clock_synced(self.config.alerts.clock_sync)
        self.alerts.prune(now_ms)

    def audit(self) -> None:
        """The audit chain: all of it at the first run, then the lines appended since."""
        check, self.audit_cursor = self.audit_log.verify_from(self.audit_cursor)
        self.audit_error = None if check.ok else f"line {check.bad_line}: {check.problem}"

    def status_line(self) -> str:
        if self.last is None:
            return "starting"
        return health.status_line(self.last, self.alerts.firing_counts())

    def apply(self, config: Config) -> None:
        self.config = config

    def _snapshot(self, now_ms: int) -> tuple[Health, int | None]:
        """The snapshot, and when a room's rule could next start to hold by time alone."""
        deadline, findings = None, []
        try:
            with self.writer.reader() as conn:
                cameras = health.cameras_health(self.recorders(), conn, time.monotonic())
                corrupt = queries.corrupt_since(conn, now_ms - DAY_MS)
                rooms = access_state.read(conn, self.config, now_ms)
                findings = rules.evaluate(rooms, self.config.access, now_ms)
                deadline = rules.next_deadline(rooms, now_ms)
            catalog_error = self.writer.last_error
        except sqlite3.Error as exc:
            cameras, corrupt, catalog_error = (), {}, f"cannot read the catalog: {exc}"
        report = self.forecast
        return Health(
            now_ms,
            health.volumes_health(self.volumes.current(), report),
            cameras,
            write_errors=dict(self.store.write_errors),
            blocked=dict(self.volumes.blocked),
            at_risk=report if report and report["at_risk"] else None,
            catalog_error=catalog_error,
            audit_error=self.audit_error,
            corrupt=corrupt,
            clock_synced=self.clock_synced,
            access=tuple(findings),
        ), deadline

    def _refresh_forecast(self, now_ms: int) -> None:
        try:
            with self.writer.reader() as conn:
                self.forecast = forecast.build(conn, self.config, self.volumes.current(), now_ms)
        except sqlite3.Error as exc:
            log.error("forecast.failed", error=str(exc))
