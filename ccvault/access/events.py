"""Access events as ccvault takes them: every source (HTTP, MQTT, a followed file) hands raw
events here, and gets back the valid ones and, for each bad one, why.

Pure: no I/O, the clock passed in. A batch is judged event by event, so one bad event costs
only itself; nothing in an event is trusted — the door must be a configured one, the time
readable and not far in the future, the direction and result one of the known words, every
text printable and short.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from ccvault.catalog.rows import AccessEvent, Direction, Result
from ccvault.config.access import AccessConfig
from ccvault.errors import UsageError
from ccvault.timefmt import LATEST_MS, parse_time

MAX_BATCH = 1000
W = TypeVar("W", bound=StrEnum)
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int  # position in the batch (a line number for a file, 1-based)
    reason: str


@dataclass(frozen=True, slots=True)
class Checked:
    accepted: list[AccessEvent]
    rejected: list[Rejection]


class BadEvent(ValueError):
    """Why one event is refused (its message is the reason given back)."""


def check_batch(
    items: Iterable[Any], config: AccessConfig, tz: ZoneInfo, now_ms: int, first_index: int = 0
) -> Checked:
    """Every event of a batch, judged on its own."""
    accepted, rejected = [], []
    for index, item in enumerate(items, first_index):
        try:
            accepted.append(check_event(item, config, tz, now_ms))
        except BadEvent as exc:
            rejected.append(Rejection(index, str(exc)))
    return Checked(accepted, rejected)


def check_event(item: Any, config: AccessConfig, tz: ZoneInfo, now_ms: int) -> AccessEvent:
    if not isinstance(item, Mapping):
        raise BadEvent("an event is an object with id, time, door, person, direction, result")
    unknown = set(item) - {"id", "time", "door", "person", "role", "direction", "result"}
    if unknown:
        raise BadEvent(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    door_name = _text(item, "door", 128)
    door = config.door(door_name)
    if door is None:
        raise BadEvent(f"door: unknown door {door_name!r} (not in [[access.doors]])")
    person = _text(item, "person", 128)
    role = _optional_text(item, "role", 64)
    if role is None and (known := config.person(person)) is not None:
        role = known.role
    return AccessEvent(
        event_id=_event_id(item),
        time_ms=_time(item, tz, now_ms, config.max_future_seconds),
        door=door.name,
        room=door.room,
        person=person,
        role=role,
        direction=_word(item, "direction", Direction),
        result=_word(item, "result", Result),
    )


def _event_id(item: Mapping[str, Any]) -> str:
    raw = item.get("id")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise BadEvent("id: required, the source's own event id (text or a whole number)")
    return _printable("id", str(raw), 200)


def _time(item: Mapping[str, Any], tz: ZoneInfo, now_ms: int, ahead_s: float) -> int:
    raw = item.get("time")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise BadEvent("time: required, ISO 8601 or UTC milliseconds")
    if isinstance(raw, int):
        at = raw
        if not 0 <= at <= LATEST_MS:
            raise BadEvent(f"time: {raw} is outside 1970-01-01 to 9999-12-31")
    else:
        try:
            at = parse_time(_printable("time", raw, 64), tz, now_ms, "time")
        except UsageError as exc:
            raise BadEvent(f"time: {exc.problem}") from None
    if at > now_ms + ahead_s * 1000:
        raise BadEvent(
            f"time: {raw!r} is more than {ahead_s:g} s in the future (a wrong clock at the source?)"
        )
    return at


def _word(item: Mapping[str, Any], field: str, kind: type[W]) -> W:
    raw = item.get(field)
    try:
        return kind(raw)
    except ValueError:
        words = ", ".join(w.value for w in kind)
        raise BadEvent(f"{field}: {raw!r} is not one of {words}") from None


def _text(item: Mapping[str, Any], field: str, limit: int) -> str:
    raw = item.get(field)
    if not isinstance(raw, str):
        raise BadEvent(f"{field}: required text")
    return _printable(field, raw, limit)


def _optional_text(item: Mapping[str, Any], field: str, limit: int) -> str | None:
    raw = item.get(field)
    if raw is None or raw == "":
        return None
    return _text(item, field, limit)


def _printable(field: str, text: str, limit: int) -> str:
    value = text.strip()
    if not value or len(value) > limit or not _PRINTABLE.match(value):
        raise BadEvent(f"{field}: must be 1–{limit} printable characters")
    return value
