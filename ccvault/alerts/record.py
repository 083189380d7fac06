"""Putting alerts on record in the catalog, whoever raised them, without letting a catalog that
refuses the write silence the alert.

One-off events are raised in the daemon (which records and sends them) and in CLI commands (a
`ccvault purge` that deletes footage inside min_days). A CLI process reaches no channel, so it
records its events unsent (`notified_ms` NULL): `ccvault alerts` and `GET /api/alerts` list them
at once, and the daemon — running beside, or the next to start — sends each exactly once
(`AlertWrites.mark_sent` claims a row only while it is still unsent).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ccvault.alerts.model import FIRING, Alert, fingerprint
from ccvault.catalog import db
from ccvault.catalog.rows import AlertRow
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.alerts import AlertsBase
from ccvault.errors import CcvaultError
from ccvault.host.events import Event, Listener

log = structlog.get_logger("ccvault.alerts")

_LEVEL = {"critical": "error", "warning": "warning", "info": "info"}
# What a catalog write of an alert may fail with: the alert is logged and sent all the same.
WRITE_FAILED = (CcvaultError, *db.Error)


def event_alert(event: Event, severity: str, now_ms: int) -> Alert:
    return Alert(
        name=event.name,
        labels=event.labels,
        severity=severity,
        status=FIRING,
        summary=event.summary,
        starts_ms=now_ms,
        ends_ms=now_ms,
        event=True,
        details=event.details,
    )


def event_row(alert: Alert, sent_ms: int | None) -> AlertRow:
    """A one-off event's row: resolved when raised; `sent_ms` None while no channel has it."""
    return AlertRow(
        alert.name,
        alert.fingerprint,
        alert.labels,
        alert.severity,
        alert.summary,
        alert.details,
        alert.starts_ms,
        event=True,
        resolved_ms=alert.starts_ms,
        notified_ms=sent_ms,
    )


def row_alert(row: AlertRow) -> Alert:
    """An unsent event recorded by another process, as the notification to send now."""
    return Alert(
        name=row.name,
        labels=row.labels,
        severity=row.severity,
        status=FIRING,
        summary=row.summary,
        starts_ms=row.started_ms,
        ends_ms=row.started_ms,
        event=True,
        details=row.details,
    )


def saved(write: Callable[[], int | None], alert: Alert) -> int | None:
    """Run one catalog write of an alert; a failure is logged, never raised, so the alert is
    still logged and sent (a catalog that is gone is itself an alert)."""
    try:
        return write()
    except WRITE_FAILED as exc:
        log.error("alert.record_failed", alert=alert.name, error=str(exc), **alert.labels)
        return None


def log_alert(alert: Alert, event: str) -> None:
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


def cli_recorder(
    writer: CatalogWriter, settings: AlertsBase, now_ms: Callable[[], int]
) -> Listener:
    """The events listener of a CLI process: log each event and record it unsent."""

    def record(event: Event) -> None:
        rule = settings.settings(event.name)
        alert = event_alert(event, rule.severity, now_ms())
        log_alert(alert, "alert.event")
        if rule.enabled:
            saved(lambda: writer.alerts.open(event_row(alert, None)), alert)

    return record
