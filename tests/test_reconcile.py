"""Catalog and disks agree after anything: bad files, strays, duplicates, lost files, lost disks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import cli_json, run_cli, wait_for, write_config
from tests.peers import make_clip

CLEAN = {
    "ingested": [],
    "adopted": [],
    "found": [],
    "duplicates": [],
    "quarantined": [],
    "missing": [],
    "foreign": [],
    "unavailable": [],
}
T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z


def spool_run(
    root: Path, camera: str, run: str, files: dict[str, bytes | Path], start_s: float
) -> Path:
    """Lay out a recorder run in the spool as ffmpeg leaves it: files plus segments.csv."""
    run_dir = root / "hot" / ".spool" / camera / run
    run_dir.mkdir(parents=True)
    lines = []
    for i, (name, content) in enumerate(files.items()):
        target = run_dir / name
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_bytes(content)
        lines.append(f"{name},{start_s + 3 * i:.6f},{start_s + 3 * (i + 1):.6f}\n")
    (run_dir / "segments.csv").write_text("".join(lines))
    return run_dir


def test_spool_ingest_quarantines_bad_files_and_is_clean_after(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}])
    clip = make_clip(tmp_path / "clip.mp4", 3)
    run_dir = spool_run(
        tmp_path,
        "door",
        "1780000000000",
        {
            "000000.mp4": clip,
            "000001.mp4": clip.read_bytes()[: len(clip.read_bytes()) // 3],  # truncated
            "000002.mp4": b"\x00garbage" * 4000,
        },
        start_s=T0 / 1000,
    )

    result = run_cli(config, "reconcile", "--json")
    assert result.returncode == 1, "quarantined files are a finding"
    report = json.loads(result.stdout)
    assert [i["path"] for i in report["ingested"]] == [f"{T0}_3000.mp4"]
    reasons = sorted(i["reason"] for i in report["quarantined"])
    assert len(reasons) == 2 and all(r.startswith("probe failed") for r in reasons), reasons
    assert len(list((tmp_path / "hot" / "quarantine" / "door").iterdir())) == 2
    assert not run_dir.exists(), "a finished run leaves nothing in the spool"

    seg = cli_json(
        config,
        "segments",
        "--camera",
        "door",
        "--from",
        "2026-05-28T20:26:00Z",
        "--to",
        "2026-05-28T20:30:00Z",
    )
    assert [(s["start_ms"], s["end_ms"]) for s in seg] == [(T0, T0 + 3000)]
    assert Path(seg[0]["path"]) == tmp_path / "hot/door/2026/05/28/20" / f"{T0}_3000.mp4"

    again = run_cli(config, "reconcile", "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout) == CLEAN


def test_strays_are_adopted_duplicates_set_aside_and_lost_files_reported(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}])
    clip = make_clip(tmp_path / "clip.mp4", 3)
    spool_run(tmp_path, "door", "1", {"000000.mp4": clip}, start_s=T0 / 1000)
    assert run_cli(config, "reconcile").returncode == 0
    stored = tmp_path / "hot/door/2026/05/28/20" / f"{T0}_3000.mp4"

    stray = tmp_path / "hot/door/2026/05/28/21" / f"{T0 + 3_600_000}_3000.mp4"
    stray.parent.mkdir(parents=True)
    shutil.copy(clip, stray)
    twin = stored.with_name(f"{T0}_3000-1.mp4")
    shutil.copy(stored, twin)
    (tmp_path / "hot/door/notes.txt").write_text("not footage")

    dry = cli_json(config, "reconcile", "--dry-run")
    assert [i["path"] for i in dry["adopted"]] == [str(stray.relative_to(tmp_path / "hot"))]
    assert stray.exists() and twin.exists(), "a dry run changes nothing"

    report = cli_json(config, "reconcile")
    assert len(report["adopted"]) == 1 and report["adopted"][0]["segment_id"] > 1
    assert [d["path"] for d in report["duplicates"]] == [str(twin.relative_to(tmp_path / "hot"))]
    assert report["duplicates"][0]["segment_id"] == 1
    assert report["quarantined"] == []
    assert report["foreign"] == [
        {"volume": "hot", "path": "door/notes.txt", "reason": "not a segment file name"}
    ]
    assert not twin.exists()
    assert (tmp_path / "hot/door/notes.txt").exists(), "not footage: left where it is"
    (tmp_path / "hot/door/notes.txt").unlink()  # the operator takes it away

    stored.unlink()  # someone deletes footage behind ccvault's back
    report = cli_json(config, "reconcile")
    assert report["missing"] == [
        {"segment_id": 1, "volume": "hot", "path": str(stored.relative_to(tmp_path / "hot"))}
    ]
    rows = cli_json(
        config,
        "segments",
        "--camera",
        "door",
        "--from",
        "2026-05-28T20:00:00Z",
        "--to",
        "2026-05-28T23:00:00Z",
    )
    assert [r["state"] for r in rows] == ["missing", "ok"]
    assert cli_json(config, "reconcile") == CLEAN, "reported once, never silently dropped"


@pytest.mark.slow
def test_volume_without_identity_is_never_written_or_read_as_empty(
    tmp_path: Path, daemon_factory
) -> None:
    volumes = [
        {"name": "fast", "path": str(tmp_path / "fast"), "role": "hot"},
        {"name": "spare", "path": str(tmp_path / "spare"), "role": "hot"},
    ]
    config = write_config(
        tmp_path,
        [{"name": "door", "url": "demo://?width=320&height=180"}],
        volumes=volumes,
        segment_seconds=2,
    )
    clip = make_clip(tmp_path / "clip.mp4", 3)
    assert (
        run_cli(config, "import", "--camera", "door", "--start", "-1h", str(clip)).returncode == 0
    )
    imported = cli_json(config, "segments", "--camera", "door", "--from", "-2h", "--to", "now")
    assert {s["volume"] for s in imported} == {"fast"}

    # The disk of "fast" is not mounted: its directory is there, its identity is not.
    shutil.move(tmp_path / "fast", tmp_path / "fast-unmounted")
    (tmp_path / "fast").mkdir()
    status = cli_json(config, "status")
    fast = next(v for v in status["volumes"] if v["name"] == "fast")
    assert fast["state"] == "unavailable"
    assert "identity" in fast["reason"]
    assert cli_json(config, "reconcile")["missing"] == [], "an unmounted disk is not 'all gone'"

    daemon = daemon_factory(config)
    wait_for(
        lambda: (
            len(cli_json(config, "segments", "--camera", "door", "--from", "-1m", "--to", "now"))
            >= 1
        ),
        40,
        what="live footage",
    )
    daemon.stop()
    assert list((tmp_path / "fast").iterdir()) == [], "nothing written to an unavailable volume"
    live = cli_json(config, "segments", "--camera", "door", "--from", "-1m", "--to", "now")
    assert {s["volume"] for s in live} == {"spare"}

    # The disk comes back: everything catalogued on it is there again.
    (tmp_path / "fast").rmdir()
    shutil.move(tmp_path / "fast-unmounted", tmp_path / "fast")
    assert cli_json(config, "reconcile") == CLEAN
    assert (
        next(v for v in cli_json(config, "status")["volumes"] if v["name"] == "fast")["state"]
        == "available"
    )


def test_volume_init_and_replace_are_deliberate(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}])
    clip = make_clip(tmp_path / "clip.mp4", 3)
    assert (
        run_cli(config, "import", "--camera", "door", "--start", "-1h", str(clip)).returncode == 0
    )
    identity = tmp_path / "hot" / ".ccvault-volume.json"
    volume_id = json.loads(identity.read_text())["volume_uuid"]

    identity.unlink()
    refused = run_cli(config, "import", "--camera", "door", "--start", "-3h", str(clip))
    assert refused.returncode == 1
    assert "no volume is available" in refused.stderr

    assert run_cli(config, "volume", "init", "hot").returncode == 0
    assert json.loads(identity.read_text())["volume_uuid"] == volume_id
    assert cli_json(config, "reconcile") == CLEAN

    stored = cli_json(config, "segments", "--camera", "door", "--from", "-2h", "--to", "now")
    # The disk dies; a new, empty one is mounted in its place.
    shutil.rmtree(tmp_path / "hot")
    (tmp_path / "hot").mkdir()
    again = run_cli(config, "volume", "replace", "hot", "--yes")
    assert again.returncode == 0, again.stderr
    assert f"{len(stored)} segment(s) marked missing" in again.stdout
    after = cli_json(config, "segments", "--camera", "door", "--from", "-2h", "--to", "now")
    assert {s["state"] for s in after} == {"missing"}
    assert json.loads(identity.read_text())["volume_uuid"] != volume_id
    assert run_cli(config, "volume", "init", "nope").returncode == 3
