"""Visits: who was in a room, from when to when, by which doors, escorted by whom — made from
the room's granted door events. Pure: the caller loads the events and the visits already open
when they start, and stores what comes back.

Rules, as an access system's anti-passback would see them: a granted `in` opens a visit; an
`in` while already inside is kept and flags the open visit `entered_twice`; an `out` closes it;
an `out` with no visit open is kept as a visit with no entry, flagged `no_entry`. Denied,
forced and held-open events move nobody (a forced door says nothing about who came through).
A visit keeps the id of the event that opened it (`key_event`), so events that arrive late
re-derive the same visits in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ccvault.catalog.rows import Direction, Flag, Result, StoredEvent, Visit

T = TypeVar("T")


@dataclass
class _Open:
    visit: Visit
    doors: list[str] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)


def derive(events: Iterable[StoredEvent], inside: Sequence[Visit]) -> list[Visit]:
    """The visits made by `events` (sorted by time, then id), continuing the visits `inside`
    (open when the first event happened). Visits still open come back with `left_ms` None."""
    open_: dict[str, _Open] = {v.person: _Open(v, list(v.doors), list(v.flags)) for v in inside}
    done: list[Visit] = []
    for event in events:
        if event.result != Result.GRANTED:
            continue
        current = open_.get(event.person)
        if event.direction == Direction.IN:
            if current is None:
                open_[event.person] = _Open(
                    Visit(event.id, event.person, event.role, event.time_ms, None), [event.door]
                )
            else:
                _add(current.doors, event.door)
                _add(current.flags, Flag.ENTERED_TWICE)
        elif current is not None:
            _add(current.doors, event.door)
            done.append(_closed(current, left_ms=event.time_ms))
            del open_[event.person]
        else:
            done.append(
                Visit(
                    event.id,
                    event.person,
                    event.role,
                    None,
                    event.time_ms,
                    (event.door,),
                    flags=(Flag.NO_ENTRY,),
                )
            )
    done += [_closed(o, left_ms=None) for o in open_.values()]
    return sorted(done, key=_order)


def with_escorts(
    visits: Sequence[Visit], escorted: Iterable[str], escorts: Iterable[str]
) -> list[Visit]:
    """Each visit of an escorted role with the people of an escort role inside at the same
    time (kept names from an earlier derivation stay: they were inside then)."""
    need, can = set(escorted), set(escorts)
    escort_visits = [v for v in visits if v.role in can]
    out = []
    for visit in visits:
        if visit.role in need:
            names = {e.person for e in escort_visits if e.overlaps(visit)}
            visit = replace(visit, escorted_by=tuple(sorted(names | set(visit.escorted_by))))
        out.append(visit)
    return out


def _closed(state: _Open, left_ms: int | None) -> Visit:
    return replace(state.visit, left_ms=left_ms, doors=tuple(state.doors), flags=tuple(state.flags))


def _add(items: list[T], item: T) -> None:
    if item not in items:
        items.append(item)


def _order(visit: Visit) -> tuple[int, int]:
    start = visit.entered_ms if visit.entered_ms is not None else visit.left_ms
    return (start or 0, visit.key_event)
