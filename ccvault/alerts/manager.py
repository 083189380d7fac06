"""The daemon's alert manager: evaluates conditions, keeps the book, records and notifies.

Every change is logged (the channel that always works), saved in the catalog (so
`ccvault alerts` and the API list it, and a restart resolves rather than forgets it) and
handed to the dispatcher, whose channel workers never block the caller.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import structlog

from ccvault.alerts import conditions
from ccvault.alerts.book import AlertBook, Change, Instance, Observation
from ccvault.alerts.channels import build_channels
from ccvault.alerts.dispatcher import Dispatcher
from ccvault.alerts.model import FIRING, Alert, fingerprint
from ccvault.catalog import queries
from ccvault.catalog.rows import AlertRow
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.alerts import AlertsBase
from ccvault.host.events import Event
from ccvault.views.health import Health

log = structlog.get_logger("ccvault.alerts")

DAY_MS = 86_400_000
_LEVEL = {"critical": "error", "warning": "warning", "info": "info"}


class AlertManager:
    def __init__(
        self,
        settings: AlertsBase,
        writer: CatalogWriter,
        dispatcher: Dispatcher,
        now_ms: int,
        grace_s: float,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.dispatcher = dispatcher
        self._lock = threading.Lock()
        # Told of every change (fired, renotified, escalated, resolved) and event, after it is
        # recorded and handed to the channels: what else should follow (incident holds).
        self.listeners: list[Callable[[Alert, str], None]] = []
        with writer.reader() as conn:
            rows = [r for r in queries.alerts(conn, now_ms) if r.resolved_ms is None]
        carried = [_instance(r) for r in rows]
        self.book = AlertBook(lambda name: self.settings.settings(name), carried)
        # Until the first checks after a restart have seen the cameras and volumes, what was
        # firing stays firing: "resolved" then "firing" again would be noise at every restart.
        self._carried = {i.observation.fingerprint: i.observation for i in carried}
        self._grace_until_ms = now_ms + round(grace_s * 1000)

    def evaluate(self, health: Health) -> list[Change]:
        observed = conditions.evaluate(health, self.settings)
        with self._lock:
            if health.now_ms < self._grace_until_ms:
                seen = {o.fingerprint for o in observed}
                observed += [o for k, o in self._carried.items() if k not in seen]
            else:
                self._carried = {}
            changes = self.book.update(observed, health.now_ms)
            for change in changes:
                self._record(change, health.now_ms)
        return changes

    def raise_event(self, event: Event, now_ms: int) -> None:
        """A one-off event: logged, saved resolved, sent once (if enabled)."""
        rule = self.settings.settings(event.name)
        alert = Alert(
            name=event.name,
            labels=event.labels,
            severity=rule.severity,
            status=FIRING,
            summary=event.summary,
            starts_ms=now_ms,
            ends_ms=now_ms,
            event=True,
            details=event.details,
        )
        _log(alert, "alert.event")
        if not rule.enabled:
            return
        self.writer.alerts.open(
            AlertRow(
                event.name,
                alert.fingerprint,
                event.labels,
                rule.severity,
                event.summary,
                event.details,
                now_ms,
                event=True,
                resolved_ms=now_ms,
                notified_ms=now_ms,
            )
        )
        self.dispatcher.submit(alert)
        self._tell(alert, "event")

    def apply(self, settings: AlertsBase) -> None:
        """A reloaded [alerts]: new thresholds at the next check; new channels at once (the old
        dispatcher delivers what it holds, then stops)."""
        old, self.settings = self.settings, settings
        if (old.webhook, old.email) != (settings.webhook, settings.email):
            previous, self.dispatcher = self.dispatcher, Dispatcher(build_channels(settings))
            self.dispatcher.start()
            previous.stop()

    def firing_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(i.observation.name for i in self.book.firing()))

    def prune(self, now_ms: int) -> None:
        self.writer.alerts.prune(now_ms - round(self.settings.history_days * DAY_MS))

    def _record(self, change: Change, now_ms: int) -> None:
        instance, alert = change.instance, change.alert
        _log(alert, f"alert.{change.kind}")
        if change.kind == "fired":
            obs = instance.observation
            row_id = self.writer.alerts.open(
                AlertRow(
                    obs.name,
                    obs.fingerprint,
                    obs.labels,
                    instance.severity,
                    obs.summary,
                    obs.details,
                    instance.since_ms,
                    notified_ms=now_ms,
                )
            )
            self.book.instances[obs.fingerprint] = replace(instance, row_id=row_id)
        elif instance.row_id is not None and change.kind == "resolved":
            self.writer.alerts.resolve(instance.row_id, now_ms)
        elif instance.row_id is not None:
            obs = instance.observation
            self.writer.alerts.renotify(
                instance.row_id, instance.severity, obs.summary, obs.details, now_ms
            )
        self.dispatcher.submit(alert)
        self._tell(alert, change.kind)

    def _tell(self, alert: Alert, kind: str) -> None:
        for listener in self.listeners:
            try:
                listener(alert, kind)
            except Exception:  # a listener must not cost the alert its record or delivery
                log.exception("alert.listener_failed", alert=alert.name)


def _instance(row: AlertRow) -> Instance:
    obs = Observation(row.name, row.labels, row.summary, row.severity, row.details)
    return Instance(
        obs, row.severity, row.started_ms, firing=True, notified_ms=row.notified_ms, row_id=row.id
    )


def _log(alert: Alert, event: str) -> None:
    level = "info" if alert.status != FIRING else _LEVEL.get(alert.severity, "warning")
    getattr(log, level)(
        event,
        alert=alert.name,
        severity=alert.severity,
        status=alert.status,
        summary=alert.summary,
        fingerprint=fingerprint(alert.name, alert.labels),
        **alert.labels,
    )
