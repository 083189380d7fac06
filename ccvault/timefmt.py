"""The one parser and formatter for times typed and shown by people (CLI, HTTP API, web).

Storage is UTC integer milliseconds; people type local time. A local time that a daylight-saving
change makes ambiguous or impossible is refused with the candidates, never guessed.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from ccvault.errors import UsageError

RELATIVE = re.compile(r"^([-+])(\d+)(s|m|h|d|w)$")
# A day word, optionally with a wall time: `today`, `yesterday 22:00`, `tomorrow 07:30:15`; a
# bare `09:00` is today's. Days are calendar days of the configured zone, not 24 h back.
DAY_WORDS = {"today": 0, "yesterday": -1, "tomorrow": 1}
WORDED = re.compile(
    r"^(?:(today|yesterday|tomorrow)(?:\s+|$))?(?:(\d{1,2}):(\d{2})(?::(\d{2}))?)?$"
)
HOW = "use today, yesterday, 'today 09:00', 'yesterday 22:00', now, -30m / -2h / -7d, or ISO 8601"
DAY_MS = 86_400_000
UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
# Times anyone may name: 1970 to the end of year 9999 (what a JSON time can show); `+1e12w`
# would otherwise overflow SQLite's INTEGER and the formatter.
LATEST_MS = 253_402_300_799_999


def parse_time(text: str, tz: ZoneInfo, now_ms: int, what: str = "time") -> int:
    """`now`; `today`, `yesterday`, `tomorrow` (the day's first instant in `tz`), with a wall
    time (`today 09:00`, `yesterday 22:00`) or a bare `09:00` (today's); `-30m`/`-2h`/`-7d`
    (fixed durations back from now; `+7d` ahead, for previews and hold ends); or ISO 8601 (a
    bare date is that day's first instant) → UTC ms, between 1970 and the end of 9999."""
    at = _parse(text, tz, now_ms, what)
    if not 0 <= at <= LATEST_MS:
        raise UsageError(what, f"{text!r} is outside 1970-01-01 to 9999-12-31")
    return at


def ordered(from_ms: int, to_ms: int, from_name: str = "from", to_name: str = "to") -> None:
    """A range is half-open and not empty: every command and route checks it here."""
    if to_ms <= from_ms:
        raise UsageError(to_name, f"must be later than {from_name}")


def _parse(text: str, tz: ZoneInfo, now_ms: int, what: str) -> int:
    value = " ".join(text.split()).lower()
    if value == "now":
        return now_ms
    rel = RELATIVE.match(value)
    if rel:
        sign = -1 if rel.group(1) == "-" else 1
        return now_ms + sign * int(rel.group(2)) * UNIT_MS[rel.group(3)]
    worded = WORDED.match(value) if value else None
    if worded:
        return _worded(worded, tz, now_ms, what, text)
    try:
        if len(value) == 10:  # a bare date: that day's first instant
            return to_ms(_day_start(date.fromisoformat(value), tz))
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        raise UsageError(what, f"cannot read {text!r} ({HOW})") from None
    if parsed.tzinfo is not None:
        return to_ms(parsed)
    return to_ms(_localize(parsed, tz, what, text))


def _worded(match: re.Match[str], tz: ZoneInfo, now_ms: int, what: str, text: str) -> int:
    """`today`, `yesterday 22:00`, `09:00`: a calendar day of `tz` (a DST day has 23 or 25
    hours, so `yesterday` is never `now - 24h`) and a wall time on it, refused when the
    change skips or repeats it."""
    word, hour, minute, second = match.groups()
    today = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(tz).date()
    day = today + timedelta(days=DAY_WORDS[word or "today"])
    if hour is None:
        return to_ms(_day_start(day, tz))
    try:
        wall = time(int(hour), int(minute), int(second or 0))
    except ValueError:
        raise UsageError(what, f"cannot read {text!r}: no such time of day") from None
    return to_ms(_localize(datetime.combine(day, wall), tz, what, text))


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    """The day's first instant: midnight, or the end of the gap where a change skips
    midnight (fold 0 of a skipped time converts to the instant the gap ends)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _localize(naive: datetime, tz: ZoneInfo, what: str, text: str) -> datetime:
    early = naive.replace(tzinfo=tz, fold=0)
    late = naive.replace(tzinfo=tz, fold=1)
    if early.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        readings = sorted(d.astimezone(UTC).astimezone(tz) for d in (early, late))
        raise UsageError(
            what,
            f"{text!r} does not exist in {tz.key} (clocks skip it); it could mean "
            + " or ".join(r.isoformat() for r in readings),
        )
    if early.utcoffset() != late.utcoffset():
        candidates = " or ".join(d.isoformat() for d in (early, late))
        raise UsageError(what, f"{text!r} occurs twice in {tz.key}: {candidates}")
    return early


def to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def utc_text(ms: int) -> str:
    """The JSON form: `YYYY-MM-DDTHH:MM:SS.sssZ`. The date is formatted once per day and the
    time of day is arithmetic: a listing formats thousands of times (2.4x faster)."""
    day, rest = divmod(ms, DAY_MS)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{_utc_date(day)}{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def utc_text_or_none(ms: int | None) -> str | None:
    """A time that may not exist yet (no footage, not resolved): null in JSON, not a date."""
    return None if ms is None else utc_text(ms)


@lru_cache(maxsize=1024)
def _utc_date(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")


def local_text(ms: int, tz: ZoneInfo) -> str:
    """The table form: local wall time with its zone abbreviation, unambiguous across DST."""
    moment = datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz)
    return moment.strftime("%Y-%m-%d %H:%M:%S ") + (moment.tzname() or "")


def duration_text(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
