"""Importing footage from elsewhere: same store, across DST and clock steps, never overwriting."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import cli_json, run_cli, write_config
from tests.peers import make_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "80s": make_clip(root / "80s.mp4", 80, keyint_s=2.0, motion_windows=((10, 20),)),
        "30s": make_clip(root / "30s.mp4", 30, keyint_s=2.0),
        "long-gop": make_clip(root / "long-gop.mp4", 40, keyint_s=20.0),
    }


def berlin(tmp_path: Path, segment_seconds: int = 20) -> Path:
    """A site keeping footage ten years, so footage of the 2026-10-25 DST change is in policy."""
    config = write_config(
        tmp_path,
        [{"name": "door", "url": "demo://", "enabled": False}],
        timezone="Europe/Berlin",
        segment_seconds=segment_seconds,
    )
    config.write_text(
        config.read_text() + "\n[retention]\ncontinuous_days = 3650\n"
        "motion_days = 3650\nmax_days = 3650\n"
    )
    return config


def stored(
    config: Path, start: str = "2026-10-25T00:00:00Z", end: str = "2026-10-25T04:00:00Z"
) -> list[dict]:
    return cli_json(config, "segments", "--camera", "door", "--from", start, "--to", end)


def test_import_across_dst_and_a_clock_step_keeps_every_segment(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    config = berlin(tmp_path)
    # 02:59:20 summer time; the clocks go back at 03:00 CEST to 02:00 CET.
    first = run_cli(
        config,
        "import",
        "--camera",
        "door",
        "--start",
        "2026-10-25T02:59:20+02:00",
        str(clips["80s"]),
        "--json",
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["files"][0]["status"] == "imported"
    segs = stored(config)
    assert [s["start"] for s in segs] == [
        "2026-10-25T00:59:20.000Z",
        "2026-10-25T00:59:40.000Z",
        "2026-10-25T01:00:00.000Z",
        "2026-10-25T01:00:20.000Z",
    ]
    assert segs[-1]["end"] == "2026-10-25T01:00:40.000Z"
    table = run_cli(
        config,
        "segments",
        "--camera",
        "door",
        "--from",
        "2026-10-25T00:00:00Z",
        "--to",
        "2026-10-25T04:00:00Z",
    ).stdout
    assert "2026-10-25 02:59:40 CEST" in table and "2026-10-25 02:00:00 CET" in table

    # A clock that stepped back 40 s would record the same wall times again: with --force the
    # second footage is stored beside the first, nothing is overwritten.
    refused = run_cli(
        config, "import", "--camera", "door", "--start", "2026-10-25T01:00:00Z", str(clips["30s"])
    )
    assert refused.returncode == 4
    assert "overlaps 2 stored segment(s) of door" in refused.stderr
    assert "--force" in refused.stderr
    assert len(stored(config)) == 4, "a refused import writes nothing"
    forced = run_cli(
        config,
        "import",
        "--camera",
        "door",
        "--start",
        "2026-10-25T01:00:00Z",
        "--force",
        str(clips["30s"]),
    )
    assert forced.returncode == 0, forced.stderr
    segs = stored(config)
    assert len(segs) == 4 + 2
    paths = [s["path"] for s in segs]
    assert len(set(paths)) == len(paths)
    for seg in segs:
        assert hashlib.sha256(Path(seg["path"]).read_bytes()).hexdigest() == seg["sha256"]
    assert {Path(p).parent.name for p in paths} == {"00", "01"}, "UTC hour directories"

    again = run_cli(
        config,
        "import",
        "--camera",
        "door",
        "--start",
        "2026-10-25T02:59:20+02:00",
        str(clips["80s"]),
        "--json",
    )
    assert again.returncode == 0
    assert json.loads(again.stdout)["files"][0]["status"] == "already imported"
    assert len(stored(config)) == 6


def test_segment_longer_than_segment_seconds_is_found_from_inside(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    config = berlin(tmp_path, segment_seconds=2)
    assert (
        run_cli(
            config,
            "import",
            "--camera",
            "door",
            "--start",
            "2026-10-25T10:00:00Z",
            str(clips["long-gop"]),
        ).returncode
        == 0
    )
    everything = stored(config, "2026-10-25T09:00:00Z", "2026-10-25T11:00:00Z")
    assert [s["end_ms"] - s["start_ms"] for s in everything] == [20_000, 20_000]
    inside = stored(config, "2026-10-25T10:00:30Z", "2026-10-25T10:00:31Z")
    assert [s["id"] for s in inside] == [everything[1]["id"]]


def test_spool_on_another_filesystem_copies_and_verifies(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    shm = Path("/dev/shm")
    if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test directory")
    spool = Path(tempfile.mkdtemp(dir=shm))
    try:
        config = write_config(
            tmp_path, [{"name": "door", "url": "demo://"}], spool=spool, segment_seconds=20
        )
        assert (
            run_cli(
                config, "import", "--camera", "door", "--start", "-1h", str(clips["80s"])
            ).returncode
            == 0
        )
        segs = stored(config, "-2h", "now")
        assert len(segs) == 4
        for seg in segs:
            assert hashlib.sha256(Path(seg["path"]).read_bytes()).hexdigest() == seg["sha256"]
            assert os.stat(seg["path"]).st_dev != os.stat(spool).st_dev
        assert list(spool.iterdir()) == [], "nothing left behind in the spool"
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def test_import_refuses_bad_input_clearly(tmp_path: Path, clips: dict[str, Path]) -> None:
    config = berlin(tmp_path)
    ambiguous = run_cli(
        config, "import", "--camera", "door", "--start", "2026-10-25T02:30", str(clips["30s"])
    )
    assert ambiguous.returncode == 2
    assert "occurs twice in Europe/Berlin" in ambiguous.stderr
    unknown = run_cli(config, "import", "--camera", "hall", "--start", "now", str(clips["30s"]))
    assert unknown.returncode == 3
    assert "ccvault: error: camera hall: not in the config" in unknown.stderr
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    bad = run_cli(config, "import", "--camera", "door", "--start", "-1h", str(junk))
    assert bad.returncode == 2
    assert "not importable footage" in bad.stderr
    assert stored(config, "-1d", "now") == []


def test_import_past_the_retention_maximum_needs_a_hold(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    refused = run_cli(config, "import", "--camera", "door", "--start", "-40d", str(clips["30s"]))
    assert refused.returncode == 4
    assert "max_days" in refused.stderr and "--hold" in refused.stderr
    assert stored(config, "-41d", "now") == []
    held = run_cli(
        config,
        "import",
        "--camera",
        "door",
        "--start",
        "-40d",
        "--hold",
        "evidence from the contractor's laptop",
        str(clips["30s"]),
    )
    assert held.returncode == 0, held.stderr
    holds = cli_json(config, "hold", "list")
    assert [(h["cameras"], h["reason"], h["state"]) for h in holds] == [
        (["door"], "evidence from the contractor's laptop", "active")
    ]
    imported = stored(config, "-41d", "now")
    assert imported
    plan = cli_json(config, "purge", "--dry-run", "--all")["actions"]
    assert {a["rule"] for a in plan} == {f"hold:{holds[0]['id']}"}
