"""Times people type (`yesterday 22:00`) and what `explain` says back, as a user sees them:
CLI output and exit codes, HTTP answers."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ccvault.timefmt import local_text, to_ms
from tests.api_peer import serve
from tests.conftest import cli_json, run_cli, write_config
from tests.retention_seed import DAY_MS, seed

BERLIN = ZoneInfo("Europe/Berlin")


def _config(tmp_path: Path) -> Path:
    config = write_config(
        tmp_path,
        [{"name": "door", "url": "demo://", "enabled": False}],
        timezone="Europe/Berlin",
        volumes=[
            {
                "name": "hot",
                "path": str(tmp_path / "hot"),
                "role": "hot",
                "reserve_free_bytes": 0,
                "reserve_free_percent": 0,
            }
        ],
    )
    config.write_text(config.read_text() + "\n[retention]\ncontinuous_days = 14\n")
    return config


def _local(day: date, hour: int, minute: int = 0) -> int:
    return to_ms(datetime.combine(day, time(hour, minute), tzinfo=BERLIN))


def test_yesterday_22_00_on_the_command_line_and_what_explain_says(tmp_path: Path) -> None:
    config = _config(tmp_path)
    today = datetime.now(BERLIN).date()
    last_night = _local(today - timedelta(days=1), 22)
    old = _local(today - timedelta(days=20), 12)
    kept, purged = seed(
        config,
        [{"camera": "door", "start_ms": last_night}, {"camera": "door", "start_ms": old}],
        tmp_path / "cache",
    )
    listed = cli_json(config, "segments", "--camera", "door", "--from", "yesterday", "--to", "now")
    assert [s["id"] for s in listed] == [kept.id]

    why = run_cli(config, "explain", "--camera", "door", "--at", "yesterday 22:00:01")
    assert why.returncode == 0, why.stderr
    # min_days (7) decides first: the footage is kept a week from its end, at the least.
    until = kept.end_ms + 7 * DAY_MS
    assert f"kept until {local_text(until, BERLIN)} (rule: min_days)" in why.stdout

    assert cli_json(config, "purge")["deleted"] == 1
    gone = run_cli(
        config, "explain", "--camera", "door", "--at", local_text(old + 1000, BERLIN)[:19]
    )
    assert gone.returncode == 3
    assert "the footage is gone: deleted on " in gone.stderr
    assert "under continuous_days" in gone.stderr and "by cli:" in gone.stderr
    later = run_cli(config, "explain", "--camera", "door", "--at", "tomorrow 12:00")
    assert later.returncode == 3 and "has not come yet" in later.stderr
    never = run_cli(config, "explain", "--camera", "door", "--at", "today 03:00")
    assert never.returncode == 3 and "nothing was ever recorded then" in never.stderr
    assert not purged.path.exists()


class FixedClock:
    """The API's now: 01:00 CEST on Monday 2026-03-30, after Berlin's 23-hour Sunday."""

    def __init__(self, wall_ms: int) -> None:
        self.now = wall_ms

    def wall_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return 0.0


@pytest.mark.parametrize(
    ("start", "end", "found"),
    [
        ("yesterday 22:00", "today", True),  # 2026-03-29 22:00 CEST, not now - 24 h + ...
        ("yesterday", "yesterday 21:59", False),
        ("today", "now", False),
    ],
)
def test_the_api_reads_day_words_in_the_sites_zone_on_a_dst_day(
    tmp_path: Path, start: str, end: str, found: bool
) -> None:
    config = _config(tmp_path)
    sunday = date(2026, 3, 29)  # clocks went from 02:00 CET to 03:00 CEST
    (seg,) = seed(config, [{"camera": "door", "start_ms": _local(sunday, 22)}], tmp_path / "c")
    with serve(config, clock=FixedClock(_local(sunday + timedelta(days=1), 1))) as api:
        resp = api.client("viewer").get(
            "/api/segments", params={"camera": "door", "from": start, "to": end}
        )
        assert resp.status_code == 200, resp.text
        assert [s["id"] for s in resp.json()] == ([seg.id] if found else [])
        bad = api.client("viewer").get(
            "/api/segments", params={"camera": "door", "from": "yesterday 02:30", "to": "now"}
        )
    assert bad.status_code == 400
    assert json.loads(bad.text)["error"]["field"] == "from"
