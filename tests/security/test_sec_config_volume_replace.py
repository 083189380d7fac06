"""`volume replace` never orphans footage by mistake, and reconcile never calls a store with a
missing disk clean.

Replacing a healthy, mounted volume would mark everything on it missing while the files sit
right there: refused (exit 4) unless the volume is unavailable or --force is given; either
way audited, and the new disk is reconciled so footage on it is found again or adopted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import cli_json, run_cli, write_config
from tests.peers import make_clip


def _segments(config: Path) -> list[dict]:
    return cli_json(config, "segments", "--camera", "door", "--from", "-3h", "--to", "now")


def _imported(tmp_path: Path) -> tuple[Path, list[dict]]:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}])
    clip = make_clip(tmp_path / "clip.mp4", 3)
    for start in ("-2h", "-1h"):
        done = run_cli(config, "import", "--camera", "door", "--start", start, str(clip))
        assert done.returncode == 0, done.stderr
    stored = _segments(config)
    assert len(stored) >= 2 and {s["state"] for s in stored} == {"ok"}
    return config, stored


def test_replacing_a_healthy_volume_is_refused_unless_forced_and_keeps_its_footage(
    tmp_path: Path,
) -> None:
    config, stored = _imported(tmp_path)
    identity = tmp_path / "hot/.ccvault-volume.json"
    before = identity.read_text()

    refused = run_cli(config, "volume", "replace", "hot", "--yes")
    assert refused.returncode == 4, (refused.stdout, refused.stderr)
    assert refused.stderr.startswith("ccvault: error: volume hot: ")
    assert "--force" in refused.stderr
    assert identity.read_text() == before
    assert _segments(config) == stored, "nothing marked missing"
    assert cli_json(config, "audit", "list", "--action", "volume.replace") == []

    forced = run_cli(config, "volume", "replace", "hot", "--yes", "--force")
    assert forced.returncode == 0, (forced.stdout, forced.stderr)
    n = len(stored)
    assert f"{n} segment(s) marked missing, {n} found again" in forced.stdout
    assert json.loads(identity.read_text())["volume_uuid"] != json.loads(before)["volume_uuid"]
    assert _segments(config) == stored, "found again, not orphaned"
    [record] = cli_json(config, "audit", "list", "--action", "volume.replace")
    assert record["details"]["forced"] is True and record["details"]["marked_missing"] == n
    assert run_cli(config, "reconcile").returncode == 0


def test_a_replacement_disk_holding_footage_gets_it_found_and_adopted(tmp_path: Path) -> None:
    """The old disk failed; its footage was copied onto the new one (plus a file the catalog
    never knew). Replacing the unavailable volume needs no --force and orphans nothing."""
    config, stored = _imported(tmp_path)
    hot = tmp_path / "hot"
    shutil.move(hot, tmp_path / "old-disk")
    shutil.copytree(tmp_path / "old-disk", hot)
    (hot / ".ccvault-volume.json").unlink()  # a new disk: no identity
    first = Path(stored[0]["path"]).relative_to(hot)
    start = int(first.name.split("_")[0])
    extra = hot / first.parent / f"{start - start % 3_600_000}_3000.mp4"  # in that same hour
    shutil.copy(hot / first, extra)
    assert run_cli(config, "reconcile").returncode == 1, "an unavailable volume is not clean"

    replaced = run_cli(config, "volume", "replace", "hot", "--yes")
    assert replaced.returncode == 0, (replaced.stdout, replaced.stderr)
    n = len(stored)
    assert f"{n} segment(s) marked missing, {n} found again and 1 adopted" in replaced.stdout
    after = _segments(config)
    assert len(after) == n + 1 and {s["state"] for s in after} == {"ok"}
    [record] = cli_json(config, "audit", "list", "--action", "volume.replace")
    assert record["details"]["forced"] is False and "identity" in record["details"]["was"]


def test_reconcile_exits_1_while_a_volume_is_unavailable(tmp_path: Path) -> None:
    volumes = [
        {"name": "fast", "path": str(tmp_path / "fast"), "role": "hot"},
        {"name": "spare", "path": str(tmp_path / "spare"), "role": "hot"},
    ]
    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}], volumes=volumes)
    assert run_cli(config, "reconcile").returncode == 0
    (tmp_path / "fast/.ccvault-volume.json").unlink()  # the disk is not mounted
    result = run_cli(config, "reconcile", "--json")
    assert result.returncode == 1, result.stdout
    [gone] = json.loads(result.stdout)["unavailable"]
    assert gone["volume"] == "fast" and "identity" in gone["reason"]
    text = run_cli(config, "reconcile")
    assert text.returncode == 1 and "unavailable: 1" in text.stdout
