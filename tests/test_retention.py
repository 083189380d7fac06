"""Retention end to end through the CLI: preview, explain, hold, purge, audit."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from ccvault.catalog import db
from ccvault.timefmt import utc_text
from tests.conftest import cli_json, run_cli, write_config
from tests.retention_seed import DAY_MS, seed

HOUR_MS = 3_600_000


def _config(
    tmp_path: Path,
    retention: str = "",
    cameras: tuple[str, ...] = ("door", "rack"),
    volumes: list[dict] | None = None,
    catalog: db.Target | None = None,
) -> Path:
    config = write_config(
        tmp_path,
        [{"name": c, "url": "demo://", "enabled": False} for c in cameras],
        volumes=volumes
        or [
            {
                "name": "hot",
                "path": str(tmp_path / "hot"),
                "role": "hot",
                "reserve_free_bytes": 0,
                "reserve_free_percent": 0,
            }
        ],
        catalog=catalog,
    )
    config.write_text(config.read_text() + "\n[retention]\n" + retention)
    return config


@pytest.fixture
def store(tmp_path: Path, catalog_target: db.Target) -> tuple[Path, list, int]:
    """Two cameras, footage every 12 h over 40 days; activity on door's footage at noon. Each
    test using it runs on a SQLite and on a PostgreSQL catalog (`catalog_target`)."""
    config = _config(tmp_path, catalog=catalog_target)
    now = int(time.time() * 1000)
    footage = []
    for camera in ("door", "rack"):
        for i in range(80):
            start = now - 40 * DAY_MS + i * 12 * HOUR_MS + 3 * HOUR_MS  # off the boundaries
            footage.append(
                {"camera": camera, "start_ms": start, "activity": camera == "door" and i % 2 == 1}
            )
    return config, seed(config, footage, tmp_path / "cache"), now


def _by_id(actions: list[dict]) -> dict[int, dict]:
    return {a["segment_id"]: a for a in actions}


def test_dry_run_explains_every_rule_and_changes_nothing(store) -> None:
    config, segments, now = store
    plan = cli_json(config, "purge", "--dry-run")
    actions = _by_id(plan["actions"])
    for seg in segments:
        age_end = now - seg.end_ms
        idle = not seg.activity
        if now - seg.start_ms >= 31 * DAY_MS:
            assert actions[seg.id]["rule"] == "max_days", seg
        elif idle and age_end >= 14 * DAY_MS:
            assert actions[seg.id]["rule"] == "continuous_days", seg
        elif age_end < 14 * DAY_MS:
            assert seg.id not in actions, (seg, actions.get(seg.id), now)
    assert {a["action"] for a in plan["actions"]} == {"delete"}
    deleted = [a for a in plan["actions"] if a["action"] == "delete"]
    assert plan["totals"]["actions"]["delete"] == {
        "segments": len(deleted),
        "bytes": sum(a["bytes"] for a in deleted),
    }
    assert set(plan["totals"]["cameras"]) == {"door", "rack"}
    assert all(s.path.exists() for s in segments)  # a dry run touches nothing
    # --all lists the kept segments too, each with why and until when.
    everything = cli_json(config, "purge", "--dry-run", "--all")
    assert len(everything["actions"]) == len(segments)
    kept = [a for a in everything["actions"] if a["action"] == "keep"]
    assert {a["rule"] for a in kept} <= {"window", "min_days"}
    assert all(a["until_ms"] > now for a in kept)
    # Later, more is due: --at a week from now.
    later = cli_json(config, "purge", "--dry-run", "--at", "+7d")
    assert len(later["actions"]) > len(plan["actions"])


@pytest.mark.slow
def test_hold_keeps_footage_through_purge_and_is_audited(store) -> None:
    config, segments, _now = store
    oldest = segments[0]
    result = run_cli(
        config,
        "hold",
        "add",
        "--camera",
        "door",
        "--from",
        utc_text(oldest.start_ms),
        "--to",
        utc_text(oldest.start_ms + DAY_MS),
        "--reason",
        "incident 2026-114",
    )
    assert result.returncode == 0, result.stderr
    hold_id = int(result.stdout.strip())  # the id alone
    plan = _by_id(cli_json(config, "purge", "--dry-run", "--all")["actions"])
    assert plan[oldest.id] == {
        **plan[oldest.id],
        "action": "keep",
        "rule": f"hold:{hold_id}",
        "until_ms": None,
    }
    why = cli_json(config, "explain", "--camera", "door", "--at", utc_text(oldest.start_ms + 1000))
    assert (why["segment_id"], why["action"], why["rule"]) == (oldest.id, "keep", f"hold:{hold_id}")
    rack_oldest = next(s for s in segments if s.camera == "rack")
    assert plan[rack_oldest.id]["action"] == "delete"  # the hold names door only

    done = cli_json(config, "purge")
    assert done["deleted"] > 0 and done["failed"] == 0
    assert oldest.path.exists() and not rack_oldest.path.exists()
    remaining = cli_json(config, "purge", "--dry-run")
    assert remaining["actions"] == []  # nothing expired survives the pass

    holds = cli_json(config, "hold", "list")
    assert holds[0]["id"] == hold_id and holds[0]["state"] == "active"
    assert (
        run_cli(config, "hold", "release", str(hold_id), "--reason", "case closed").returncode == 0
    )
    assert cli_json(config, "purge")["deleted"] >= 1
    assert not oldest.path.exists()

    records = cli_json(config, "audit", "list")
    actions = [r["action"] for r in records]
    assert actions.count("purge") >= 2 and "hold.add" in actions and "hold.release" in actions
    purged = {s["id"] for r in records if r["action"] == "purge" for s in r["details"]["segments"]}
    assert {rack_oldest.id, oldest.id} <= purged
    assert run_cli(config, "audit", "verify").returncode == 0


def test_hold_errors_are_clear(store) -> None:
    config, _segments, _now = store
    missing = run_cli(
        config, "hold", "add", "--camera", "nope", "--from", "-1d", "--to", "now", "--reason", "x"
    )
    assert missing.returncode == 3 and "camera nope" in missing.stderr
    backwards = run_cli(config, "hold", "add", "--from", "now", "--to", "-1d", "--reason", "x")
    assert backwards.returncode == 2 and "--to" in backwards.stderr
    assert run_cli(config, "hold", "release", "99", "--reason", "x").returncode == 3
    assert run_cli(config, "purge", "--at", "now").returncode == 2  # --at needs --dry-run
    nothing = run_cli(config, "explain", "--camera", "door", "--at", "+1d")
    assert nothing.returncode == 3


def test_holds_rebuild_from_the_audit_log(store, catalog_target: db.Target) -> None:
    config, _segments, _now = store
    hold_id = int(
        run_cli(
            config, "hold", "add", "--from", "-30d", "--to", "-29d", "--reason", "subpoena"
        ).stdout
    )
    with closing(db.connect(catalog_target)) as conn:  # restored from before the hold
        conn.execute("DELETE FROM hold_cameras")
        conn.execute("DELETE FROM holds")
    assert run_cli(config, "hold", "rebuild", "--dry-run").returncode == 1
    assert run_cli(config, "hold", "rebuild").returncode == 0
    holds = cli_json(config, "hold", "list")
    assert [(h["id"], h["reason"], h["state"]) for h in holds] == [(hold_id, "subpoena", "active")]


def test_quota_deletes_oldest_past_min_days(tmp_path: Path) -> None:
    config = _config(tmp_path, "max_bytes = 1\nmin_days = 2\n", cameras=("door",))
    now = int(time.time() * 1000)
    segments = seed(
        config,
        [{"camera": "door", "start_ms": now - d * DAY_MS} for d in (5, 4, 3, 1)],
        tmp_path / "cache",
    )
    plan = _by_id(cli_json(config, "purge", "--dry-run")["actions"])
    assert {i: a["rule"] for i, a in plan.items()} == {
        segments[0].id: "max_bytes:camera",
        segments[1].id: "max_bytes:camera",
        segments[2].id: "max_bytes:camera",
    }  # the day-old one is inside min_days


def test_migration_moves_old_footage_to_the_archive(tmp_path: Path) -> None:
    volumes = [
        {
            "name": "hot",
            "path": str(tmp_path / "hot"),
            "role": "hot",
            "reserve_free_bytes": 0,
            "reserve_free_percent": 0,
        },
        {
            "name": "big",
            "path": str(tmp_path / "big"),
            "role": "archive",
            "reserve_free_bytes": 0,
            "reserve_free_percent": 0,
        },
    ]
    config = _config(tmp_path, "hot_days = 1\n", cameras=("door",), volumes=volumes)
    now = int(time.time() * 1000)
    old, new = seed(
        config,
        [
            {"camera": "door", "start_ms": now - 3 * DAY_MS},
            {"camera": "door", "start_ms": now - HOUR_MS},
        ],
        tmp_path / "cache",
    )
    plan = cli_json(config, "purge", "--dry-run")["actions"]
    assert [(a["segment_id"], a["action"], a["rule"], a["target"]) for a in plan] == [
        (old.id, "migrate", "hot_days", "big")
    ]
    assert cli_json(config, "purge")["migrated"] == 1
    assert not old.path.exists() and new.path.exists()
    rows = cli_json(config, "segments", "--camera", "door", "--from", "-4d", "--to", "now")
    by_id = {r["id"]: r for r in (rows["segments"] if isinstance(rows, dict) else rows)}
    assert by_id[old.id]["volume"] == "big" and by_id[new.id]["volume"] == "hot"
    moved = tmp_path / "big" / old.path.relative_to(tmp_path / "hot")
    assert moved.exists()
    assert run_cli(config, "reconcile").returncode == 0  # catalog and disks agree
    migrate = [r for r in cli_json(config, "audit", "list") if r["action"] == "migrate"]
    assert migrate[0]["details"]["segments"][0]["to"] == "big"
    assert json.loads(json.dumps(migrate))  # plain JSON all the way


def test_quarantine_and_spool_leftovers_follow_the_ceiling(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        "max_days = 1\nmotion_days = 1\ncontinuous_days = 1\nmin_days = 0\n",
        cameras=("door",),
    )
    assert run_cli(config, "volume", "init", "hot").returncode == 0
    # A recorder left a file that is not footage: ingest quarantines it on the volume.
    run = tmp_path / "hot" / ".spool" / "door" / "1"
    run.mkdir(parents=True)
    (run / "000000.mp4").write_bytes(b"not footage" * 100)
    (run / "segments.csv").write_text("000000.mp4,1780000000.000000,1780000002.000000\n")
    two_days_ago = time.time() - 2 * 86400
    assert cli_json(config, "reconcile")["quarantined"][0]["reason"].startswith("probe failed")
    leftover = tmp_path / "hot" / ".spool" / "door" / "1700000000000" / "000001.mp4"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a segment")
    os.utime(leftover, (two_days_ago, two_days_ago))
    with sqlite3.connect(tmp_path / "catalog.sqlite") as conn:  # quarantined two days ago
        conn.execute("UPDATE quarantine SET created_ms = created_ms - 2 * 86400000")
    quarantined = list((tmp_path / "hot" / "quarantine").rglob("*_000000.mp4"))
    assert len(quarantined) == 1
    plan = cli_json(config, "purge", "--dry-run")
    assert {item.get("spool_file") or item["path"] for item in plan["leftovers"]} == {
        str(leftover),
        str(quarantined[0].relative_to(tmp_path / "hot")),
    }
    assert cli_json(config, "purge")["leftovers"] == 2
    assert not quarantined[0].exists() and not leftover.exists()
    with sqlite3.connect(tmp_path / "catalog.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 0
    assert "purge.leftovers" in [r["action"] for r in cli_json(config, "audit", "list")]
