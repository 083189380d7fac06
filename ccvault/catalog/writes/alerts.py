"""Alerts that fired, for `ccvault alerts`, the API, and a restarted daemon."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ccvault.catalog.rows import AlertRow

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


class AlertWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def open(self, row: AlertRow) -> int:
        """A firing alert (or a one-off event, saved resolved); its id. `notified_ms` None: no
        channel has it yet (an event a CLI command recorded, for the daemon to send)."""
        with self._core.transaction() as conn:
            return conn.execute(
                "INSERT INTO alerts (name, fingerprint, labels, severity, summary, details,"
                " event, started_ms, resolved_ms, notified_ms, notices, node)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    row.name,
                    row.fingerprint,
                    json.dumps(row.labels, sort_keys=True),
                    row.severity,
                    row.summary,
                    json.dumps(row.details, sort_keys=True),
                    int(row.event),
                    row.started_ms,
                    row.resolved_ms,
                    row.notified_ms,
                    0 if row.notified_ms is None else 1,
                    self._core.node,  # whose it is: only that node fires, re-sends, resolves
                ),
            ).fetchone()[0]

    def renotify(
        self, alert_id: int, severity: str, summary: str, details: dict[str, str], now_ms: int
    ) -> None:
        with self._core.transaction() as conn:
            conn.execute(
                "UPDATE alerts SET severity = ?, summary = ?, details = ?,"
                " notified_ms = ?, notices = notices + 1 WHERE id = ?",
                (severity, summary, json.dumps(details, sort_keys=True), now_ms, alert_id),
            )

    def mark_sent(self, alert_id: int, now_ms: int) -> bool:
        """Claim an unsent event for sending; False when it was sent already (exactly once)."""
        with self._core.transaction() as conn:
            return (
                conn.execute(
                    "UPDATE alerts SET notified_ms = ?, notices = notices + 1"
                    " WHERE id = ? AND notified_ms IS NULL",
                    (now_ms, alert_id),
                ).rowcount
                == 1
            )

    def resolve(self, alert_id: int, now_ms: int) -> None:
        with self._core.transaction() as conn:
            conn.execute(
                "UPDATE alerts SET resolved_ms = ? WHERE id = ? AND resolved_ms IS NULL",
                (now_ms, alert_id),
            )

    def prune(self, before_ms: int) -> int:
        """History older than [alerts] history_days; firing alerts are never pruned."""
        with self._core.transaction() as conn:
            return conn.execute("DELETE FROM alerts WHERE resolved_ms < ?", (before_ms,)).rowcount
