"""Recording access events: checked, stored once each, the rooms' visits derived again.

Every source (the HTTP route, the MQTT subscriber, the file follower) calls `AccessLog.record`
with raw events. The events and the mark "this room's visits need deriving from time T" commit
together; deriving and storing the visits is a second transaction that clears the mark, so a
crash in between is finished by `finish_pending` at start-up. One derivation at a time (a
lock), so two sources cannot interleave a room's visits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from ccvault.access.events import Rejection, check_batch
from ccvault.access.visits import derive, with_escorts
from ccvault.catalog import queries
from ccvault.catalog.rows import AccessEvent, Result
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.host.clock import Clock
from ccvault.host.events import Event, emit

log = structlog.get_logger("ccvault.access")

# What a door event means for the alert engine, at once (not at the next check).
DOOR_EVENTS = {Result.FORCED: "door_forced", Result.HELD_OPEN: "door_held_open"}


class AccessCounters(Protocol):
    """What the access log reports (the daemon's Prometheus metrics)."""

    def access_received(
        self, source: str, accepted: int, duplicates: int, rejected: int
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a batch did: the answer an HTTP source gets back."""

    accepted: int
    duplicates: int
    rejected: list[Rejection]

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [{"index": r.index, "reason": r.reason} for r in self.rejected],
        }


class AccessLog:
    def __init__(
        self,
        config: Config,
        writer: CatalogWriter,
        clock: Clock,
        counters: AccessCounters | None = None,
    ) -> None:
        self.config, self.writer, self.clock = config, writer, clock
        # Rooms whose occupancy may have changed: the daemon checks the rules at once.
        self.on_change: Callable[[set[str]], None] = lambda _rooms: None
        self.counters = counters  # metrics: events by source and outcome
        self._lock = threading.Lock()

    def record(self, items: Iterable[Any], source: str, first_index: int = 0) -> Recorded:
        now_ms = self.clock.wall_ms()
        checked = check_batch(items, self.config.access, self.config.tz, now_ms, first_index)
        for rejection in checked.rejected:
            log.warning(
                "access.event_rejected",
                source=source,
                index=rejection.index,
                reason=rejection.reason,
            )
        with self._lock:
            added = self.writer.access.add_events(checked.accepted, source, now_ms)
            for room, from_ms in added.rooms.items():
                self._derive(room, from_ms)
        self._announce(checked.accepted, added.rooms)
        if self.counters is not None:
            self.counters.access_received(
                source, added.accepted, added.duplicates, len(checked.rejected)
            )
        return Recorded(added.accepted, added.duplicates, checked.rejected)

    def finish_pending(self) -> list[str]:
        """Start-up: rooms whose events were stored but visits not derived (a crash)."""
        with self.writer.reader() as conn:
            pending = queries.dirty_rooms(conn)
        with self._lock:
            for room, from_ms in pending.items():
                self._derive(room, from_ms)
        return sorted(pending)

    def apply(self, config: Config) -> None:
        self.config = config

    def _derive(self, room: str, from_ms: int) -> None:
        with self.writer.reader() as conn:
            inside = [v.visit for v in queries.visits_inside(conn, room, from_ms)]
            start = min([from_ms, *(v.entered_ms for v in inside if v.entered_ms is not None)])
            events = queries.room_events(conn, room, from_ms)
            earlier = [v.visit for v in queries.visits_touching(conn, room, start, from_ms)]
        visits = derive(events, inside)
        rule = self.config.access.room(room)
        if rule is not None:
            visits = with_escorts([*earlier, *visits], rule.escort_required, rule.escort_roles)[
                len(earlier) :
            ]
        self.writer.access.store_visits(room, from_ms, visits)

    def _announce(self, events: list[AccessEvent], rooms: dict[str, int]) -> None:
        for event in events:
            name = DOOR_EVENTS.get(event.result)
            if name is not None:
                room = self.config.access.room(event.room)
                emit(
                    Event(
                        name,
                        f"door {event.door} of room {event.room}: "
                        f"{event.result.replace('_', ' ')} (event {event.event_id})",
                        {"room": event.room, "door": event.door},
                        {
                            "event_id": event.event_id,
                            "person": event.person,
                            "cameras": ",".join(room.cameras if room else ()),
                        },
                    )
                )
        if rooms:
            self.on_change(set(rooms))
