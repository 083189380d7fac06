"""Issue 14, item 8: motion spans follow their camera's privacy ceiling.

A span says when someone was in front of a camera and where in the picture: personal data as
much as the footage itself. Nothing older than a camera's `max_days` may survive a retention
pass unless a hold keeps it — spans included, whether their footage is still there or not, and
for cameras no longer in the config too (they fall back to the global ceiling).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from ccvault.catalog.audit import AuditLog
from ccvault.catalog.rows import AnalysisState, Span
from ccvault.catalog.writer import CatalogWriter
from ccvault.timefmt import utc_text
from tests.conftest import cli_json, run_cli, write_config
from tests.retention_seed import DAY_MS, seed

HOUR_MS = 3_600_000


def site(root: Path) -> Path:
    config = write_config(
        root,
        [{"name": n, "url": "demo://", "enabled": False} for n in ("door", "gate")],
        volumes=[
            {
                "name": "hot",
                "path": str(root / "hot"),
                "role": "hot",
                "reserve_free_bytes": 0,
                "reserve_free_percent": 0,
            }
        ],
    )
    config.write_text(  # gate, the last camera, keeps footage two days at most
        config.read_text() + "[cameras.retention]\ncontinuous_days = 1\nmotion_days = 2\n"
        "max_days = 2\nmin_days = 0.5\n"
    )
    return config


def add_spans(config: Path, camera: str, starts: list[int]) -> None:
    """Spans as the motion scheduler stores them (their footage need not exist)."""
    writer = CatalogWriter(
        config.parent / "catalog.sqlite", AuditLog(config.parent / "audit.jsonl")
    )
    try:
        spans = [Span(s, s + 5000, 0.5, 0.1, "motion", (0.1, 0.2, 0.3, 0.4)) for s in starts]
        writer.motion.record(camera, [], AnalysisState.ANALYSED, spans, None, (0, 0))
    finally:
        writer.close()


def spans(config: Path, camera: str) -> list[int]:
    found = cli_json(config, "motion", "--camera", camera, "--from", "-60d", "--to", "now")
    return [s["start_ms"] for s in found]


def expired_records(config: Path) -> list[dict[str, Any]]:
    log = AuditLog(config.parent / "audit.jsonl")
    return [r for r in log.records() if r["action"] == "motion.expired"]


def test_motion_spans_are_purged_with_their_cameras_ceiling_unless_held(tmp_path) -> None:
    config = site(tmp_path)
    now = int(time.time() * 1000)
    held, loose, orphan = now - 3 * DAY_MS, now - 3 * DAY_MS + 6 * HOUR_MS, now - 4 * DAY_MS
    recent = now - DAY_MS
    seed(
        config,
        [{"camera": "gate", "start_ms": t, "activity": True} for t in (held, loose, recent)]
        + [{"camera": "door", "start_ms": held, "activity": True}],
        tmp_path / "cache",
    )
    add_spans(config, "gate", [orphan, held, loose, recent])  # orphan: its footage is gone
    add_spans(config, "door", [held])  # door keeps 31 days
    add_spans(config, "lobby", [now - 40 * DAY_MS, now - 10 * DAY_MS])  # not configured any more
    hold = run_cli(config, "hold", "add", "--camera", "gate", "--from", utc_text(held - 1000),
                   "--to", utc_text(held + 3000), "--reason", "incident")  # fmt: skip
    assert hold.returncode == 0, hold.stderr

    preview = cli_json(config, "purge", "--dry-run")
    assert {(s["camera"], s["spans"]) for s in preview["spans"]} == {("gate", 2), ("lobby", 1)}
    text = run_cli(config, "purge", "--dry-run").stdout
    assert "motion spans past the ceiling: 3" in text, text
    assert len(spans(config, "gate")) == 4, "a dry run changes nothing"

    done = run_cli(config, "purge", "--json")
    assert done.returncode == 0, done.stderr
    assert spans(config, "gate") == [held, recent], "the held span and the recent one stay"
    assert spans(config, "door") == [held]
    with sqlite3.connect(tmp_path / "catalog.sqlite") as conn:  # no command names it now
        lobby = conn.execute(
            "SELECT m.start_ms FROM motion_spans m JOIN cameras c ON c.id = m.camera_id"
            " WHERE c.name = 'lobby'"
        ).fetchall()
    assert lobby == [(now - 10 * DAY_MS,)]
    records = {r["details"]["camera"]: r for r in expired_records(config)}
    assert set(records) == {"gate", "lobby"}
    assert records["gate"]["details"]["spans"] == 2 and records["gate"]["actor"].startswith("cli:")
    before = records["gate"]["details"]["before"]  # the pass's now, less gate's two days
    assert utc_text(now - 2 * DAY_MS) <= before <= utc_text(int(time.time() * 1000) - 2 * DAY_MS)
    # The footage went the same way: what is past the ceiling is gone unless held.
    segments = cli_json(config, "segments", "--camera", "gate", "--from", "-5d", "--to", "now")
    assert [s["start_ms"] for s in segments] == [held, recent]
    # A second pass has nothing left to do.
    assert cli_json(config, "purge", "--dry-run")["spans"] == []
