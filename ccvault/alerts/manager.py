"""The daemon's alert manager: evaluates conditions, keeps the book, records and notifies.

Every change is logged (the channel that always works), saved in the catalog (so
`ccvault alerts` and the API list it, and a restart resolves rather than forgets it) and
handed to the dispatcher, whose channel workers never block the caller. A catalog that refuses
the write (gone, locked) does not stop the log line or the notification; the row is written
when the alert next changes, and `catalog_back` puts what fires on record in a restored
catalog; `save_pending` does it for a catalog that was out of reach (what fired, resolved or
was raised meanwhile). Events other processes recorded unsent (CLI commands) are sent here,
once.
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
from ccvault.alerts.model import Alert
from ccvault.alerts.record import event_alert, event_row, log_alert, row_alert, saved
from ccvault.catalog import queries
from ccvault.catalog.rows import AlertRow
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.alerts import AlertsBase
from ccvault.host.events import Event
from ccvault.views.health import Health

log = structlog.get_logger("ccvault.alerts")

DAY_MS = 86_400_000


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
            rows = [r for r in queries.alerts(conn, now_ms) if self._firing_here(r)]
        carried = [_instance(r) for r in rows]
        self.book = AlertBook(lambda name: self.settings.settings(name), carried)
        # Until the first checks after a restart have seen the cameras and volumes, what was
        # firing stays firing: "resolved" then "firing" again would be noise at every restart.
        self._carried = {i.observation.fingerprint: i.observation for i in carried}
        self._grace_until_ms = now_ms + round(grace_s * 1000)
        self._in_grace = True
        # What the catalog refused to record (resolutions, events): written by save_pending.
        self._unsaved: list[tuple[Instance, int]] = []
        self._unsaved_events: list[AlertRow] = []

    def evaluate(self, health: Health) -> list[Change]:
        observed = conditions.evaluate(health, self.settings)
        with self._lock:
            if health.now_ms < self._grace_until_ms:
                seen = {o.fingerprint for o in observed}
                observed += [o for k, o in self._carried.items() if k not in seen]
            elif self._in_grace:
                # From here what was firing before the restart is judged on fresh checks.
                self._in_grace, self._carried = False, {}
                log.info("alert.grace_ended", observed=sorted({o.name for o in observed}))
            changes = self.book.update(observed, health.now_ms)
            for change in changes:
                self._record(change, health.now_ms)
        return changes

    def raise_event(self, event: Event, now_ms: int) -> None:
        """A one-off event: logged, saved resolved, sent once (if enabled)."""
        rule = self.settings.settings(event.name)
        alert = event_alert(event, rule.severity, now_ms)
        log_alert(alert, "alert.event")
        if not rule.enabled:
            return
        row = event_row(alert, now_ms)
        if saved(lambda: self.writer.alerts.open(row), alert) is None:
            with self._lock:
                self._unsaved_events.append(row)
        self.dispatcher.submit(alert)
        self._tell(alert, "event")

    def send_recorded(self, now_ms: int) -> int:
        """Events CLI commands recorded (they reach no channel): each sent once, here."""
        with self.writer.reader() as conn:
            rows = queries.unsent_events(conn)
        sent = 0
        for row in rows:
            if row.id is not None and self.writer.alerts.mark_sent(row.id, now_ms):
                alert = row_alert(row)
                log_alert(alert, "alert.event_sent")
                self.dispatcher.submit(alert)
                sent += 1
        return sent

    def catalog_back(self, now_ms: int) -> None:
        """The catalog was reopened (restored from a backup): the rows the book points at are
        not its rows. What fires is matched to its open rows by fingerprint or recorded anew;
        its open rows nothing fires for any more are resolved."""
        with self.writer.reader() as conn:
            rows = {r.fingerprint: r for r in queries.alerts(conn, now_ms) if self._firing_here(r)}
        with self._lock:
            for key, instance in list(self.book.instances.items()):
                if not instance.firing:
                    continue
                row = rows.pop(key, None)
                row_id = row.id if row else self._open(instance, now_ms)
                self.book.instances[key] = replace(instance, row_id=row_id)
            for row in rows.values():
                if row.id is not None:
                    self.writer.alerts.resolve(row.id, now_ms)

    def _firing_here(self, row: AlertRow) -> bool:
        """Firing, and this node's: another node's alerts are its own to resolve."""
        return row.resolved_ms is None and row.node in (None, self.writer.node)

    def save_pending(self, now_ms: int) -> None:
        """The catalog is reachable again (the same catalog, not a restored one): what fires
        gets its row, and what resolved or was raised while no row could be written is put
        on record with its own times."""
        with self._lock:
            for key, instance in list(self.book.instances.items()):
                if instance.firing and instance.row_id is None:
                    row_id = self._open(instance, now_ms)
                    self.book.instances[key] = replace(instance, row_id=row_id)
            for instance, resolved_ms in self._unsaved:
                row_id = instance.row_id or self._open(instance, resolved_ms)
                self.writer.alerts.resolve(row_id, resolved_ms)
            for row in self._unsaved_events:
                self.writer.alerts.open(row)
            self._unsaved, self._unsaved_events = [], []

    def apply(self, settings: AlertsBase) -> None:
        """A reloaded [alerts]: new thresholds at the next check; new channels at once (the old
        dispatcher delivers what it holds, then stops)."""
        old, self.settings = self.settings, settings
        if (old.webhook, old.email) != (settings.webhook, settings.email):
            previous, self.dispatcher = self.dispatcher, Dispatcher(build_channels(settings))
            self.dispatcher.start()
            previous.stop()

    def firing(self, name: str) -> bool:
        """Whether an alert of this name is firing (a restart carries what was)."""
        with self._lock:
            return any(i.observation.name == name for i in self.book.firing())

    def firing_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(i.observation.name for i in self.book.firing()))

    def prune(self, now_ms: int) -> None:
        self.writer.alerts.prune(now_ms - round(self.settings.history_days * DAY_MS))

    def _record(self, change: Change, now_ms: int) -> None:
        """Log, save (a failed save is logged and retried at the next change), send."""
        alert = change.alert
        log_alert(alert, f"alert.{change.kind}")
        if saved(lambda: self._save(change, now_ms), alert) is None and change.kind == "resolved":
            self._unsaved.append((change.instance, now_ms))
        self.dispatcher.submit(alert)
        self._tell(alert, change.kind)

    def _save(self, change: Change, now_ms: int) -> int:
        """Write the change; the id of the alert's row."""
        instance = change.instance
        if instance.row_id is None:  # it fired now, or its row could not be written before
            row_id = self._open(instance, now_ms)
            if change.kind == "resolved":
                self.writer.alerts.resolve(row_id, now_ms)
            else:
                key = instance.observation.fingerprint
                self.book.instances[key] = replace(instance, row_id=row_id)
            return row_id
        if change.kind == "resolved":
            self.writer.alerts.resolve(instance.row_id, now_ms)
        else:
            obs = instance.observation
            self.writer.alerts.renotify(
                instance.row_id, instance.severity, obs.summary, obs.details, now_ms
            )
        return instance.row_id

    def _open(self, instance: Instance, now_ms: int) -> int:
        obs = instance.observation
        return self.writer.alerts.open(
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
