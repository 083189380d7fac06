"""Footage of a visit is kept access_days (above the idle and motion windows, below the
ceiling), and the door's own records are personal data purged after access_log_days — both
through the retention planner, shown by its dry run and explain, and audited."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from ccvault.access.log import AccessLog
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.host.clock import SystemClock
from tests.conftest import cli_json, run_cli, write_config
from tests.retention_seed import DAY_MS, seed

ACCESS = """
[retention]
continuous_days = 1
motion_days = 2
max_days = {max_days}
min_days = 0.5
access_days = {access_days}

[access]
padding_seconds = 60
access_log_days = {log_days}

[[access.rooms]]
name = "server-room"
cameras = ["room-cam"]

[[access.doors]]
name = "SR-1"
room = "server-room"

[[access.people]]
id = "c-17"
role = "contractor"
"""


def site(
    root: Path, *, max_days: float = 30, access_days: float = 20, log_days: float = 25
) -> Path:
    config = write_config(
        root,
        [
            {"name": "room-cam", "url": "demo://", "enabled": False},
            {"name": "hall", "url": "demo://", "enabled": False},
        ],
    )
    config.write_text(
        config.read_text()
        + ACCESS.format(max_days=max_days, access_days=access_days, log_days=log_days)
    )
    return config


def visit(config: Path, entered_ms: int, left_ms: int) -> None:
    loaded = load(config).config
    writer = CatalogWriter(loaded.catalog_target)
    log = AccessLog(loaded, writer, SystemClock())
    recorded = log.record(
        [
            {
                "id": "in-1",
                "time": entered_ms,
                "door": "SR-1",
                "person": "c-17",
                "direction": "in",
                "result": "granted",
            },
            {
                "id": "out-1",
                "time": left_ms,
                "door": "SR-1",
                "person": "c-17",
                "direction": "out",
                "result": "granted",
            },
        ],
        "test",
    )
    assert recorded.accepted == 2, recorded
    writer.close()


def test_a_visits_footage_is_kept_access_days_and_no_longer(tmp_path: Path) -> None:
    config = site(tmp_path)
    now = int(time.time() * 1000)
    ten_days = now - 10 * DAY_MS
    footage = seed(
        config,
        [
            {"camera": "room-cam", "start_ms": ten_days},  # during the visit
            {"camera": "room-cam", "start_ms": ten_days - 60 * 60_000},  # an hour before it
            {"camera": "hall", "start_ms": ten_days},  # same time, another camera
        ],
        tmp_path / "cache",
    )
    visit(config, ten_days - 30_000, ten_days + 5 * 60_000)
    during, before, hall = (f.id for f in footage)
    plan = json.loads(run_cli(config, "purge", "--dry-run", "--all", "--json").stdout)
    fate = {a["segment_id"]: a for a in plan["actions"]}
    assert fate[during]["action"] == "keep"
    assert (
        fate[during]["rule"].startswith("access:visit ")
        and "contractor c-17" in fate[during]["rule"]
    )
    assert fate[during]["until_ms"] == ten_days + 5 * 60_000 + 60_000 + 20 * DAY_MS
    assert fate[before]["action"] == fate[hall]["action"] == "delete"
    at = datetime.fromtimestamp((ten_days + 1000) / 1000, UTC).isoformat()
    explained = cli_json(config, "explain", "--camera", "room-cam", "--at", at)
    assert explained["rule"] == fate[during]["rule"]
    assert run_cli(config, "purge").returncode == 0
    left = {
        s["id"]
        for s in cli_json(
            config, "segments", "--camera", "room-cam", "--from", "-30d", "--to", "now"
        )
    }
    assert left == {during}
    # 25 days later the cover has ended (20 days after the visit): the footage goes.
    later = run_cli(config, "purge", "--dry-run", "--json", "--at", "+16d")
    assert during in {
        a["segment_id"] for a in json.loads(later.stdout)["actions"] if a["action"] == "delete"
    }


def test_the_ceiling_beats_a_visit(tmp_path: Path) -> None:
    config = site(tmp_path, max_days=12, access_days=11)
    now = int(time.time() * 1000)
    thirteen = now - 13 * DAY_MS
    [old] = seed(config, [{"camera": "room-cam", "start_ms": thirteen}], tmp_path / "cache")
    visit(config, thirteen - 1000, thirteen + 60_000)
    plan = json.loads(run_cli(config, "purge", "--dry-run", "--json").stdout)
    assert [(a["segment_id"], a["rule"]) for a in plan["actions"]] == [(old.id, "max_days")]


def test_access_records_past_access_log_days_are_purged_and_audited(tmp_path: Path) -> None:
    config = site(tmp_path, max_days=30, access_days=20, log_days=21)
    now = int(time.time() * 1000)
    visit(config, now - 22 * DAY_MS, now - 22 * DAY_MS + 60_000)
    plan = json.loads(run_cli(config, "purge", "--dry-run", "--json").stdout)
    assert plan["access_log"]["events"] == 2 and plan["access_log"]["visits"] == 1
    assert cli_json(config, "access-events", "--from", "-30d", "--to", "now")
    assert run_cli(config, "purge").returncode == 0
    assert cli_json(config, "access-events", "--from", "-30d", "--to", "now") == []
    assert cli_json(config, "visits", "--from", "-30d", "--to", "now") == []
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    purged = [r for r in audit if r["action"] == "purge.access"]
    assert purged and purged[-1]["details"]["events"] == 2


def test_visits_must_be_kept_as_long_as_the_footage_they_keep(tmp_path: Path) -> None:
    config = site(tmp_path, access_days=20, log_days=10)
    checked = run_cli(config, "check-config")
    assert checked.returncode == 2 and "access.access_log_days" in checked.stderr
