"""The server room's rules, held against what the door log and the cameras say. Pure: the
state is read elsewhere (`access.state`), the time passed in, and every finding says which
room, which visits and which camera times it is about.

- `two_person_rule`: someone of an escorted role (contractor, visitor) inside while nobody of
  an escort role is, for longer than the room's grace; resolves when an escort enters or the
  person leaves.
- `presence_without_entry`: motion on the room's camera while the room is empty by the log and
  no entry came within the entry window before it (a tailgater, a propped door, a missed
  entry).
- `more_people_than_entries`: more people counted on video than are inside by the log, for
  longer than the grace.
- `access_denied_repeatedly`: `denied_count` denials at one door within `denied_minutes`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ccvault.catalog.rows import StoredVisit
from ccvault.config.access import AccessConfig, RoomConfig
from ccvault.timefmt import utc_text

RULES = (
    "two_person_rule",
    "presence_without_entry",
    "more_people_than_entries",
    "access_denied_repeatedly",
)


@dataclass(frozen=True, slots=True)
class MotionSeen:
    """A motion span on one of the room's cameras, with the log's view of its start."""

    span_id: int
    camera: str
    start_ms: int
    end_ms: int
    inside_at_start: int  # people inside by the log when the motion began
    entry_before_ms: int | None  # the latest granted entry at or before its start
    people_max: int | None  # most people counted on one frame (None: not counted)
    people_max_ms: int  # how long that count lasted


@dataclass(frozen=True, slots=True)
class RoomState:
    room: RoomConfig
    inside: tuple[StoredVisit, ...]  # open visits, earliest entry first
    escort_left_ms: int | None  # the latest exit of someone of an escort role
    motion: tuple[MotionSeen, ...] = ()
    denials: dict[str, tuple[int, ...]] = field(default_factory=dict)  # door -> times


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    labels: dict[str, str]
    summary: str
    details: dict[str, str]
    since_ms: int  # when the condition began (an alert's start, a hold's start)


def evaluate(states: list[RoomState], config: AccessConfig, now_ms: int) -> list[Finding]:
    out: list[Finding] = []
    for state in states:
        out += _two_person(state, now_ms)
        out += _presence_without_entry(state)
        out += _more_people(state)
        out += _denials(state, config, now_ms)
    return out


def next_deadline(states: list[RoomState], now_ms: int) -> int | None:
    """When a rule could start to hold with nothing else happening (a grace running out), so
    the check can run then instead of at its next tick."""
    due = [
        since + round(s.room.grace_seconds * 1000)
        for s in states
        if (since := _alone_since(s)) is not None
    ]
    later = [t for t in due if t > now_ms]
    return min(later) if later else None


def _alone_since(state: RoomState) -> int | None:
    """Since when an escorted person has been inside with no escort, or None."""
    roles_in = {v.visit.role for v in state.inside}
    if roles_in & set(state.room.escort_roles):
        return None
    escorted = [v for v in state.inside if v.visit.role in state.room.escort_required]
    if not escorted:
        return None
    entered = min(v.visit.entered_ms or 0 for v in escorted)
    return max(entered, state.escort_left_ms or 0)


def _two_person(state: RoomState, now_ms: int) -> Iterator[Finding]:
    since = _alone_since(state)
    if since is None or now_ms - since < state.room.grace_seconds * 1000:
        return
    alone = [v for v in state.inside if v.visit.role in state.room.escort_required]
    who = ", ".join(f"{v.visit.person} ({v.visit.role})" for v in alone)
    yield Finding(
        "two_person_rule",
        {"room": state.room.name},
        f"room {state.room.name}: {who} inside with no escort since {utc_text(since)}",
        {
            "visits": ",".join(str(v.id) for v in alone),
            "since": utc_text(since),
            "cameras": ",".join(state.room.cameras),
        },
        since,
    )


def _presence_without_entry(state: RoomState) -> Iterator[Finding]:
    window = state.room.entry_window_seconds * 1000
    for seen in state.motion:
        entered_just_before = (
            seen.entry_before_ms is not None and seen.start_ms - seen.entry_before_ms <= window
        )
        if seen.inside_at_start == 0 and not entered_just_before:
            yield Finding(
                "presence_without_entry",
                {"room": state.room.name, "camera": seen.camera, "span": str(seen.span_id)},
                f"room {state.room.name}: motion on {seen.camera} at {utc_text(seen.start_ms)} "
                "with nobody inside by the door log and no entry just before",
                {
                    "from": utc_text(seen.start_ms),
                    "to": utc_text(seen.end_ms),
                    "camera": seen.camera,
                },
                seen.start_ms,
            )


def _more_people(state: RoomState) -> Iterator[Finding]:
    grace = state.room.grace_seconds * 1000
    inside = len(state.inside)
    for seen in state.motion:
        counted = seen.people_max
        if counted is None or counted <= max(inside, seen.inside_at_start):
            continue
        if seen.people_max_ms < grace:
            continue
        yield Finding(
            "more_people_than_entries",
            {"room": state.room.name, "camera": seen.camera, "span": str(seen.span_id)},
            f"room {state.room.name}: {counted} people on {seen.camera} at "
            f"{utc_text(seen.start_ms)}, {seen.inside_at_start} inside by the door log",
            {
                "counted": str(counted),
                "inside": str(seen.inside_at_start),
                "from": utc_text(seen.start_ms),
                "to": utc_text(seen.end_ms),
                "visits": ",".join(str(v.id) for v in state.inside),
            },
            seen.start_ms,
        )


def _denials(state: RoomState, config: AccessConfig, now_ms: int) -> Iterator[Finding]:
    window = config.denied_minutes * 60_000
    for door, times in sorted(state.denials.items()):
        recent = [t for t in times if now_ms - t <= window]
        if len(recent) >= config.denied_count:
            yield Finding(
                "access_denied_repeatedly",
                {"room": state.room.name, "door": door},
                f"door {door} of room {state.room.name}: {len(recent)} denials in the last "
                f"{config.denied_minutes:g} minutes",
                {
                    "denials": str(len(recent)),
                    "first": utc_text(min(recent)),
                    "cameras": ",".join(state.room.cameras),
                },
                min(recent),
            )
