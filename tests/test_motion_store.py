"""Motion found in stored footage: imports analysed before they return, the daemon analysing
live footage, spans across segment boundaries, and `motion` / `segments --motion`."""

from __future__ import annotations

import os
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from ccvault.catalog import db
from ccvault.catalog.schema import MIGRATIONS
from ccvault.catalog.writer import CatalogWriter
from tests.conftest import cli_json, run_cli, wait_for, write_config
from tests.peers import make_clip

# Two days ago on the hour: inside the default retention, so an import needs no hold.
_START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
START = _START.strftime("%Y-%m-%dT%H:%M:%SZ")
END = (_START + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
T0 = int(_START.timestamp() * 1000)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("motion-clips")
    # Still for 10 s, something moves from 10 s to 16 s, still again until 40 s.
    return make_clip(root / "walk.mp4", 40, keyint_s=1.0, motion_windows=((10, 16),))


def listed(config: Path, command: str, *extra: str) -> list[dict]:
    return cli_json(config, command, "--camera", "door", "--from", START, "--to", END, *extra)


def test_import_returns_with_its_footage_analysed(
    tmp_path: Path, clip: Path, catalog_target: db.Target
) -> None:
    # 4 s segments: the motion (10-16 s) crosses the cuts at 12 s and 16 s.
    config = write_config(
        tmp_path,
        [{"name": "door", "url": "demo://", "enabled": False}],
        segment_seconds=4,
        catalog=catalog_target,
    )
    assert (
        run_cli(config, "import", "--camera", "door", "--start", START, str(clip)).returncode == 0
    )
    segments = listed(config, "segments")
    assert len(segments) == 10 and all(s["analysed"] for s in segments)

    spans = listed(config, "motion")
    assert len(spans) == 1, "one span across segment boundaries"
    span = spans[0]
    assert abs(span["start_ms"] - (T0 + 10_000)) <= 1000
    assert abs(span["end_ms"] - (T0 + 16_000)) <= 1000
    assert span["kind"] == "motion" and 0 < span["area"] <= 1 and 0 < span["peak"] <= 1

    # Padded by pre 5 s / post 10 s: activity from ~5 s to ~26 s, segments 4-8 … 24-28 s.
    active = listed(config, "segments", "--motion")
    assert [s["start_ms"] - T0 for s in active] == list(range(4000, 28000, 4000))
    assert {s["activity"] for s in segments if s not in active} == {False}


def test_motion_disabled_for_a_camera_leaves_it_unanalysed(tmp_path: Path, clip: Path) -> None:
    config = write_config(
        tmp_path, [{"name": "door", "url": "demo://", "enabled": False}], segment_seconds=10
    )
    with config.open("a") as f:
        f.write("\n[cameras.motion]\nenabled = false\n")
    assert (
        run_cli(config, "import", "--camera", "door", "--start", START, str(clip)).returncode == 0
    )
    assert {s["analysed"] for s in listed(config, "segments")} == {False}
    assert listed(config, "motion") == []
    status = cli_json(config, "status")
    assert status["cameras"][0]["motion_backlog_segments"] == 0


@pytest.mark.slow
def test_the_daemon_analyses_live_footage(tmp_path: Path, daemon_factory) -> None:
    # The demo scene: someone crosses the room for 4 s every 16 s. The second camera sees the
    # same, but motion analysis is off for it.
    scene = "demo://?width=320&height=180&period=16"
    config = write_config(
        tmp_path,
        [{"name": "door", "url": scene}, {"name": "hall", "url": scene}],
        segment_seconds=4,
    )
    with config.open("a") as f:
        f.write("\n[cameras.motion]\nenabled = false\n")
    daemon = daemon_factory(config)

    def spans() -> list[dict]:
        return cli_json(config, "motion", "--camera", "door", "--from", "-5m", "--to", "now")

    wait_for(lambda: len(spans()) >= 2, 60, what="motion spans from live footage")
    found = spans()
    assert all(s["kind"] == "motion" for s in found)
    assert all(2000 <= s["end_ms"] - s["start_ms"] <= 5000 for s in found[:-1]), found

    def backlog_s(camera: str) -> float:
        status = {c["name"]: c for c in cli_json(config, "status")["cameras"]}
        return status[camera]["motion_backlog_seconds"]

    # Analysis keeps up: its backlog comes down to three segments (a moment's look could
    # catch a busy machine behind).
    wait_for(lambda: backlog_s("door") <= 3 * 4, 60, what="analysis keeping up")
    hall = cli_json(config, "segments", "--camera", "hall", "--from", "-5m", "--to", "now")
    assert hall and not any(s["analysed"] for s in hall)
    assert cli_json(config, "motion", "--camera", "hall", "--from", "-5m", "--to", "now") == []
    wait_for(
        lambda: cli_json(config, "status")["cameras"][1]["motion_backlog_segments"] == 0,
        30,
        what="nothing waits for a camera whose motion analysis is off",
    )
    assert daemon.stop() == 0


def test_analysis_uses_every_cpu_below_recording(tmp_path: Path, daemon_factory) -> None:
    """By default one analysis worker per CPU, each at lower priority than the recorders: the
    analysis may use all the CPU recording leaves, and recording never waits for it."""
    scene = "demo://?width=320&height=180&period=8"
    config = write_config(
        tmp_path, [{"name": "door", "url": scene}, {"name": "hall", "url": scene}]
    )
    daemon = daemon_factory(config)
    started = daemon.wait_event("motion.started", timeout=30)
    assert started["workers"] == len(os.sched_getaffinity(0))

    def workers() -> list[psutil.Process]:
        return [p for p in daemon.descendants() if "spawn_main" in " ".join(p.cmdline())]

    base = psutil.Process(daemon.proc.pid).nice()
    assert started["nice"] > 0
    # A worker lowers its priority once started (its imports take a moment).
    wait_for(
        lambda: {w.nice() for w in workers()} == {base + started["nice"]},
        60,
        what="analysis workers at lower priority",
    )
    recorders = [psutil.Process(pid) for pid in daemon.recorder_pids()]
    assert len(recorders) == 2
    assert {r.nice() for r in recorders} == {base}
    assert len(workers()) <= started["workers"]
    assert daemon.stop() == 0


def test_a_version_1_catalog_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.execute("INSERT INTO cameras (name) VALUES ('door')")
    conn.execute(
        "INSERT INTO volumes (name, uuid, initialised_ms) VALUES ('hot', ?, 0)",
        (str(uuid.uuid4()),),
    )
    conn.execute(
        "INSERT INTO segments (camera_id, volume_id, start_ms, end_ms, path, bytes,"
        " sha256, codec, width, height, frames, origin, ingested_ms)"
        " VALUES (1, 1, 0, 1000, 'a.mp4', 1, ?, 'h264', 2, 2, 1, 'recorded', 0)",
        ("0" * 64,),
    )
    conn.close()
    writer = CatalogWriter(path)
    with writer.reader() as reader:
        assert reader.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert [tuple(r) for r in reader.execute("SELECT analysis, activity FROM segments")] == [
            (0, 0)
        ]


def test_a_reload_changes_the_motion_settings_analysis_uses(tmp_path: Path) -> None:
    """The scheduler works a camera's settings out once per config, not at every wake: a
    reloaded config (motion turned off for one camera, a camera removed) still takes effect."""
    from ccvault.config.loading import load
    from ccvault.motion.scheduler import MotionScheduler

    cams = [{"name": "door", "url": "demo://"}, {"name": "hall", "url": "demo://"}]
    before = load(write_config(tmp_path, cams)).config
    after_path = write_config(tmp_path, cams[1:], name="after.toml")
    with after_path.open("a") as f:
        f.write("\n[cameras.motion]\nenabled = false\n\n[motion]\nmin_area = 0.05\n")
    after = load(after_path).config
    scheduler = MotionScheduler(before, None, lambda: [], workers=1)  # type: ignore[arg-type]
    try:
        assert scheduler.settings_for("door").enabled and scheduler.settings_for("hall").enabled
        scheduler.apply(after)
        assert not scheduler.settings_for("hall").enabled
        assert scheduler.settings_for("door") == after.motion_for(None)  # no longer a camera
        assert scheduler.settings_for("door").min_area == 0.05
    finally:
        scheduler.pool.shutdown()
