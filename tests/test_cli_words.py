"""Times people type (`yesterday 22:00`) and what `explain` says back, as a user sees them:
CLI output and exit codes, HTTP answers."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ccvault.text import size_text
from ccvault.timefmt import local_text, to_ms
from ccvault.views.status import retention_summary
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
    never = run_cli(config, "explain", "--camera", "door", "--at", "yesterday 03:00")
    assert never.returncode == 3 and "nothing was ever recorded then" in never.stderr
    unknown = run_cli(config, "explain", "--camera", "gate", "--at", "today 03:00")
    assert unknown.returncode == 3 and "camera gate: not in the config" in unknown.stderr
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


SIZE = re.compile(r"\b\d+(\.\d)? (B|KiB|MiB|GiB|TiB|PiB)\b")


def test_status_says_in_words_how_many_days_the_storage_holds(tmp_path: Path) -> None:
    config = _config(tmp_path)
    now = int(datetime.now(BERLIN).timestamp() * 1000)
    seed(config, [{"camera": "door", "start_ms": now - i * 600_000} for i in range(1, 4)], tmp_path)
    shown = run_cli(config, "status")
    assert shown.returncode == 0, shown.stderr
    summary = next(line for line in shown.stdout.splitlines() if "the storage holds" in line)
    assert re.fullmatch(
        r"At the current rate of \d+(\.\d)? (KiB|MiB) a day, the storage holds about [\d,]+ "
        r"days of footage: enough for the 7 days the policy must keep\. Free space and "
        r"deletable footage last about [\d,]+ days before older footage must make room\.",
        summary,
    ), summary
    assert " GB" not in shown.stdout and " MB" not in shown.stdout
    status = cli_json(config, "status")
    (volume,) = status["volumes"]
    assert volume["free_text"] == size_text(volume["free_bytes"])  # the raw field stays
    assert SIZE.fullmatch(volume["free_text"]) and SIZE.fullmatch(volume["footage_text"])
    assert status["retention"]["summary"].startswith("At the current rate of ")
    with serve(config) as api:
        http = api.client("viewer").get("/api/status").json()
    assert SIZE.fullmatch(http["volumes"][0]["total_text"])
    assert http["cameras"][0]["forecast"]["bytes_per_day_text"].endswith("iB")


def test_errors_are_sentences_not_errno_numbers_or_patterns(tmp_path: Path) -> None:
    config = _config(tmp_path)
    junk = tmp_path / "notes.mp4"
    junk.write_text("not a video\n")
    imported = run_cli(config, "import", "--camera", "door", "--start", "today 09:00", str(junk))
    assert imported.returncode == 2
    assert imported.stderr == (
        f"ccvault: error: {junk}: not importable footage: unreadable: Invalid data found when "
        "processing input\n"
    )
    under_a_file = run_cli(config, "backup", str(junk / "backups"))
    assert under_a_file.returncode == 1
    assert under_a_file.stderr == f"ccvault: error: {junk}: File exists\n"  # not a traceback
    with serve(config) as api:
        viewer = api.client("viewer")
        long_from = viewer.get("/api/segments", params={"camera": "door", "from": "9" * 65})
        zero = api.client("operator").get("/api/exports/0")
    assert long_from.status_code == 422
    assert long_from.json()["error"] == {
        "code": "invalid",
        "message": "from: must be at most 64 characters long",
        "field": "from",
    }
    assert zero.status_code == 422
    assert zero.json()["error"]["message"] == "export_id: must be at least 1"


@pytest.mark.parametrize(
    ("numbers", "says"),
    [
        (
            {"days": 3.25, "min_days": 7, "at_risk": True, "headroom_days": 0.2},
            "the storage holds about 3 days and 6 hours of footage: NOT ENOUGH for the 7 days "
            "the policy must keep (under disk pressure, younger footage will be deleted). Free "
            "space and deletable footage last about 5 hours before",
        ),
        (
            {"days": 400.4, "min_days": 0.5, "at_risk": False, "headroom_days": 12},
            "holds about 400 days of footage: enough for the 12 hours the policy must keep.",
        ),
        (
            {"days": 40, "min_days": 0, "at_risk": False, "headroom_days": 30},
            "about 40 days of footage: the policy promises no minimum.",
        ),
        ({"days": None, "min_days": 7, "at_risk": False, "headroom_days": None}, "no rate"),
    ],
)
def test_the_days_the_storage_holds_read_one_way(numbers: dict, says: str) -> None:
    assert says in retention_summary({"bytes_per_day": 3 * 2**30, **numbers})
