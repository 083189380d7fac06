"""A room's rule that fires holds the room's footage: from `[access] padding_seconds` before the
incident to after it, on the room's cameras, the reason naming the alert. The hold is an
ordinary one — listed, audited, released by an operator with a reason — so what an incident
keeps never depends on retention windows.

A condition gets a hold when it fires (to the moment it fired, plus the padding) and another
when it resolves (to its end, plus the padding); a one-off event (a forced door) gets one.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ccvault.alerts.model import Alert
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.retention import holds

log = structlog.get_logger("ccvault.alerts")

ACTOR = "alerts"
# Alerts about a room that keep its footage.
ROOM_ALERTS = frozenset(
    {
        "two_person_rule",
        "presence_without_entry",
        "more_people_than_entries",
        "access_denied_repeatedly",
        "door_forced",
        "door_held_open",
    }
)


class IncidentHolds:
    """An alert listener: a room's rule firing holds the room's footage around the incident."""

    def __init__(self, config: Config, writer: CatalogWriter, now_ms: Callable[[], int]) -> None:
        self.config, self.writer, self.now_ms = config, writer, now_ms

    def apply(self, config: Config) -> None:
        """A reloaded config: the rooms, cameras and padding of the next incident."""
        self.config = config

    def __call__(self, alert: Alert, kind: str) -> None:
        if alert.name not in ROOM_ALERTS or kind not in ("fired", "resolved", "event"):
            return
        config = self.config
        room = config.access.room(alert.labels.get("room", ""))
        if room is None or not room.cameras:
            return
        now = self.now_ms()
        pad = round(config.access.padding_seconds * 1000)
        end = alert.ends_ms if kind == "resolved" and alert.ends_ms is not None else now
        reason = (
            f"{alert.name} in room {room.name}"
            + (" (resolved)" if kind == "resolved" else "")
            + f": {alert.summary}"
        )
        hold_id = holds.add(
            self.writer,
            config,
            tuple(room.cameras),
            alert.starts_ms - pad,
            end + pad,
            reason[:1000],
            None,
            ACTOR,
            now,
        )
        log.info("incident.hold", alert=alert.name, room=room.name, hold=hold_id)
