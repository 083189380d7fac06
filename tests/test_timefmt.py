"""The one time parser: local time in, UTC ms stored; DST gaps and repeats are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ccvault.errors import UsageError
from ccvault.timefmt import local_text, parse_time, utc_text

BERLIN = ZoneInfo("Europe/Berlin")
NOW = 1_790_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-30m", NOW - 30 * 60_000),
        ("-2h", NOW - 2 * 3_600_000),
        ("-7d", NOW - 7 * 86_400_000),
        ("-45s", NOW - 45_000),
        ("2026-07-01T12:00:00Z", 1_782_907_200_000),
        ("2026-07-01T14:00:00+02:00", 1_782_907_200_000),
        ("2026-07-01T14:00:00", 1_782_907_200_000),  # CEST, UTC+2
        ("2026-01-15T13:00:00.250", 1_768_478_400_250),  # CET, UTC+1
    ],
)
def test_parse(text: str, expected: int) -> None:
    assert parse_time(text, BERLIN, NOW) == expected


def test_ambiguous_local_time_names_both_candidates() -> None:
    with pytest.raises(UsageError) as err:
        parse_time("2026-10-25T02:30", BERLIN, NOW, "--from")
    assert err.value.what == "--from"
    assert "2026-10-25T02:30:00+02:00" in err.value.problem
    assert "2026-10-25T02:30:00+01:00" in err.value.problem


def test_nonexistent_local_time_is_refused() -> None:
    with pytest.raises(UsageError) as err:
        parse_time("2026-03-29T02:30", BERLIN, NOW)
    assert "does not exist" in err.value.problem


@pytest.mark.parametrize(
    "bad", ["yesterdy", "-5x", "2026-13-01", "", "today 25:00", "today 9", "last week"]
)
def test_garbage_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_time(bad, BERLIN, NOW)


def test_formats() -> None:
    assert utc_text(1_782_907_200_250) == "2026-07-01T12:00:00.250Z"
    assert local_text(1_782_907_200_250, BERLIN) == "2026-07-01 14:00:00 CEST"
    # The two 02:30s of the autumn change are told apart by their zone abbreviation.
    first = parse_time("2026-10-25T02:30:00+02:00", BERLIN, NOW)
    second = parse_time("2026-10-25T02:30:00+01:00", BERLIN, NOW)
    assert local_text(first, BERLIN) != local_text(second, BERLIN)


def test_utc_text_equals_datetime_formatting_across_days_and_eras() -> None:
    """utc_text formats the time of day by arithmetic (listings format thousands of times):
    it must agree with datetime everywhere, leap days and times before 1970 included."""
    for at in [
        0,
        1,
        999,
        -1,
        951_782_400_000,
        951_868_799_999,  # 2000-02-29
        *range(-86_400_001, 4_102_444_800_000, 9_999_999_991),
    ]:
        expected = (
            datetime.fromtimestamp(at // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{at % 1000:03d}Z"
        )
        assert utc_text(at) == expected, at


def _utc(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


# Sunday 2026-03-29 is Berlin's spring change (02:00 CET -> 03:00 CEST: a 23-hour day);
# the injected clock says it is 12:00 CEST that day, then 01:00 CEST the Monday after.
SPRING_NOON = _utc("2026-03-29T10:00:00+00:00")
MONDAY_1AM = _utc("2026-03-29T23:00:00+00:00")


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("today", SPRING_NOON, "2026-03-29T00:00:00+01:00"),
        ("Today 09:00", SPRING_NOON, "2026-03-29T09:00:00+02:00"),
        ("today 01:59:59", SPRING_NOON, "2026-03-29T01:59:59+01:00"),
        ("yesterday", SPRING_NOON, "2026-03-28T00:00:00+01:00"),
        ("yesterday 22:00", SPRING_NOON, "2026-03-28T22:00:00+01:00"),
        ("tomorrow 7:30", SPRING_NOON, "2026-03-30T07:30:00+02:00"),
        ("09:00", SPRING_NOON, "2026-03-29T09:00:00+02:00"),
        # One hour into Monday: yesterday is the 23-hour Sunday, not "now - 24 h" (Saturday).
        ("yesterday", MONDAY_1AM, "2026-03-29T00:00:00+01:00"),
        ("yesterday 22:00", MONDAY_1AM, "2026-03-29T22:00:00+02:00"),
        ("today", MONDAY_1AM, "2026-03-30T00:00:00+02:00"),
        ("2026-03-29", MONDAY_1AM, "2026-03-29T00:00:00+01:00"),
        ("2026-03-29 09:00", MONDAY_1AM, "2026-03-29T09:00:00+02:00"),
    ],
)
def test_day_words_are_calendar_days_of_the_zone_across_a_dst_change(
    text: str, now: int, expected: str
) -> None:
    assert parse_time(text, BERLIN, now) == _utc(expected)


def test_a_day_word_with_a_time_the_change_skips_or_repeats_is_refused() -> None:
    with pytest.raises(UsageError) as skipped:
        parse_time("today 02:30", BERLIN, SPRING_NOON, "--from")
    assert skipped.value.what == "--from"
    assert "does not exist" in skipped.value.problem
    autumn = _utc("2026-10-25T10:00:00+00:00")
    with pytest.raises(UsageError) as twice:
        parse_time("today 02:30", BERLIN, autumn)
    assert "2026-10-25T02:30:00+02:00" in twice.value.problem
    assert "2026-10-25T02:30:00+01:00" in twice.value.problem


def test_today_where_the_change_skips_midnight_is_the_days_first_instant() -> None:
    """Santiago springs forward at 24:00: 2026-09-06 begins at 01:00 -03."""
    santiago = ZoneInfo("America/Santiago")
    now = _utc("2026-09-06T15:00:00+00:00")
    assert parse_time("today", santiago, now) == _utc("2026-09-06T01:00:00-03:00")
    assert parse_time("2026-09-06", santiago, now) == _utc("2026-09-06T01:00:00-03:00")


def test_an_unreadable_time_says_which_words_work() -> None:
    with pytest.raises(UsageError) as err:
        parse_time("last week", BERLIN, NOW, "--from")
    assert "today" in err.value.problem and "yesterday 22:00" in err.value.problem
