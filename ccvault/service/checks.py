"""The daemon's health checks: one snapshot every `[alerts] check_seconds`, from which the
alerts, the Prometheus gauges and systemd's STATUS= line are computed, so they always agree.

This part owns what the checks learn more slowly (the forecast, whether the clock is synced,
how far the audit chain is verified) and the latest snapshot. It also asks, every check, whether
the catalog the daemon opened is still at its path: a catalog deleted or replaced is the
`catalog_error` alert (the writer refuses every write meanwhile), and when that very catalog is
back (restored from a backup) it is reopened and `on_catalog_back` stores what waited. A
PostgreSQL catalog that cannot be reached is `catalog_unreachable` (with what waits in the
spool meanwhile); each check tries to connect again, and once it can, `on_catalog_reachable`
puts what fired meanwhile on record and wakes ingest to store the spool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress

import structlog

from ccvault.access import rules
from ccvault.access import state as access_state
from ccvault.alerts.manager import AlertManager
from ccvault.catalog import db, queries
from ccvault.catalog.audit import AuditLog
from ccvault.catalog.audit_verify import Verifier
from ccvault.catalog.nodes import own_camera_names
from ccvault.catalog.writer import CatalogGone, CatalogWriter
from ccvault.catalog.writes.audit import read_head
from ccvault.config.model import Config
from ccvault.host.clock import Clock
from ccvault.host.sdnotify import Notifier
from ccvault.ingest.backlog import Backlog
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
        key = audit_log.key.signer() if audit_log.key else None
        self.audit_verifier = Verifier(
            audit_log,
            None,
            key.public_raw if key else None,
            "the key file" if key else None,
        )
        # A chain broken before a restart stays broken until its first verification says
        # otherwise, however long reading a big log takes (longer than the alerts' grace).
        self.audit_error: str | None = (
            "not verified again since the restart yet (it was broken before)"
            if alerts.firing("audit_chain_broken")
            else None
        )
        self.clock_unknown: str | None = None
        self.on_catalog_back: Callable[[], None] = lambda: None  # set by the daemon's parts
        self.on_catalog_reachable: Callable[[], None] = lambda: None  # ditto
        self.spool_backlog: Callable[[], Backlog] = Backlog  # ditto (the ingestor's)
        self._catalog_gone: str | None = None
        self._unreachable: str | None = None
        self.last: Health | None = None
        self._lock = threading.Lock()  # a requested check may meet a scheduled one
        # Ask for a check in N seconds (the daemon's scheduler): a door event, or a rule's
        # grace running out, is not left for the next tick.
        self.soon: Callable[[float], None] = lambda _s: None

    def check(self) -> None:
        """Every check_seconds (and when asked): the catalog and the volumes again, then the
        snapshot and what follows from it."""
        with self._lock:
            self._check_catalog()
            with suppress(CatalogGone):  # the volumes as last checked meanwhile
                self.volumes.refresh()
            now_ms = self.clock.wall_ms()
            if not (self.forecast or {}).get("bytes_per_day"):
                self._refresh_forecast(now_ms)  # no write rate yet: cheap, and soon known
            snapshot, deadline = self._snapshot(now_ms)
            self.alerts.evaluate(snapshot)
            with suppress(CatalogGone, *db.Error):
                self.alerts.send_recorded(now_ms)  # events CLI commands recorded
            self.metrics.observe(snapshot, self.alerts.firing_counts())
            self.last = snapshot
            self.notifier.status(self.status_line())
        if deadline is not None:
            self.soon(max(0.0, (deadline - now_ms) / 1000) + 0.05)

    def slow(self) -> None:
        """Once a minute: the forecast (headroom), the clock, old alert history."""
        now_ms = self.clock.wall_ms()
        self._refresh_forecast(now_ms)
        mode = self.config.alerts.clock_sync
        self.clock_synced = health.clock_synced(mode)
        self.clock_unknown = health.clock_unknown(mode, self.clock_synced)
        with suppress(CatalogGone):
            self.alerts.prune(now_ms)

    def audit(self) -> None:
        """The audit chain against the catalog's head and the signed checkpoints: all of it at
        the first run, then what was appended since. Problems nobody has acknowledged keep
        `audit_chain_broken` firing, across restarts too: they are in the files and the
        catalog, not in this process."""
        rereads = self.audit_verifier.rereads
        try:
            with self.writer.reader() as conn:  # one connection for both reads of the head
                report = self.audit_verifier.check(lambda: read_head(conn, self.writer.node))
        except CatalogGone:
            return  # the head is in the catalog: checked again once it is back
        if self.audit_verifier.rereads > rereads:
            log.warning("audit.reread", reason="what was verified changed: read it all again")
        error = report.summary() or None
        if error != self.audit_error:
            if error:
                log.error(
                    "audit.chain_broken",
                    problems=[p.as_json() for p in report.open],
                    records=report.records,
                )
            else:
                log.info("audit.chain_verified", records=report.records)
        self.audit_error = error

    def status_line(self) -> str:
        if self.last is None:
            return "starting"
        return health.status_line(self.last, self.alerts.firing_counts())

    def apply(self, config: Config) -> None:
        self.config = config

    def _check_catalog(self) -> None:
        """Is the catalog opened still at its path, and reachable? When it was gone and is
        back, reopen it; when it was unreachable and is reachable again, catch up."""
        gone = self.writer.verify()
        was, unreachable = self._unreachable, self.writer.unreachable
        self._unreachable = unreachable
        if unreachable is not None and was is None:
            log.error("catalog.unreachable", error=unreachable)
        elif unreachable is None and was is not None:
            log.warning("catalog.reachable", catalog=str(self.writer.path))
            self.on_catalog_reachable()
        if unreachable is not None:
            return  # not gone: the same catalog, out of reach for now
        if gone is not None and gone != self._catalog_gone:
            log.error("catalog.gone", error=gone)
        self._catalog_gone = gone
        if gone is not None and self.writer.reopen():
            log.warning("catalog.reopened", catalog=str(self.writer.path))
            self._catalog_gone = None
            self.on_catalog_back()

    def _snapshot(self, now_ms: int) -> tuple[Health, int | None]:
        """The snapshot, and when a room's rule could next start to hold by time alone."""
        deadline, findings, nodes, pending = None, [], (), 0
        try:
            with self.writer.reader() as conn:
                cameras = health.cameras_health(self.recorders(), conn, time.monotonic())
                own = own_camera_names(conn, self.config.node.name)  # others alert for theirs
                corrupt = {
                    c: n
                    for c, n in queries.corrupt_since(conn, now_ms - DAY_MS).items()
                    if c in own
                }
                rooms = access_state.read(conn, self.config, now_ms)
                findings = rules.evaluate(rooms, self.config.access, now_ms)
                deadline = rules.next_deadline(rooms, now_ms)
                nodes = health.nodes_health(conn, self.config.node.name, now_ms)
                pending = queries.legal_holds_pending(conn)
            catalog_error = self.writer.last_error
        except CatalogGone as exc:
            cameras = health.cameras_health(self.recorders(), None, time.monotonic())
            corrupt, catalog_error = {}, self.writer.last_error or exc.problem
        except db.Error as exc:
            if not self.writer.met(exc):
                cameras, corrupt, catalog_error = (), {}, f"cannot read the catalog: {exc}"
            else:  # the server went away under the read: catalog_unreachable, not an error
                cameras = health.cameras_health(self.recorders(), None, time.monotonic())
                corrupt, catalog_error = {}, None
        unreachable = self.writer.unreachable
        if unreachable is not None:
            catalog_error = None  # one alert for one outage: catalog_unreachable says it
        report = self.forecast
        return Health(
            now_ms,
            health.volumes_health(self.volumes.current(), report),
            cameras,
            write_errors=dict(self.store.write_errors),
            blocked=dict(self.volumes.blocked),
            at_risk=report if report and report["at_risk"] else None,
            catalog_error=catalog_error,
            catalog_unreachable=unreachable,
            spool_backlog=self.spool_backlog(),
            audit_error=self.audit_error,
            corrupt=corrupt,
            legal_holds_pending=pending,
            clock_synced=self.clock_synced,
            clock_unknown=self.clock_unknown,
            access=tuple(findings),
            nodes=nodes,
        ), deadline

    def _refresh_forecast(self, now_ms: int) -> None:
        try:
            with self.writer.reader() as conn:
                self.forecast = forecast.build(conn, self.config, self.volumes.current(), now_ms)
        except (*db.Error, CatalogGone) as exc:
            log.error("forecast.failed", error=str(exc))
