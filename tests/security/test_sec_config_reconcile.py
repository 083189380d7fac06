"""Reconcile never deletes, moves, quarantines or adopts a file it has not proven to be a
ccvault segment of that volume.

Whatever a careless administrator or an attacker leaves on a volume — another volume's root,
a catalog, an export bundle, a note, a link to footage elsewhere, a clip at the wrong place or
of no known camera, bytes that do not probe, a FIFO — is reported as `foreign`, left byte for
byte where it is, and reconcile exits 1. Proof is the whole of: a regular file at
`<camera>/YYYY/MM/DD/HH/<start>_<duration>.mp4`, the hour its start's, a configured or
catalogued camera, and a successful probe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_config
from tests.peers import make_clip

T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z: door/2026/05/28/20
HOUR_DIR = "door/2026/05/28/20"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", 3)


def _copy(clip: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(clip, target)


def _other_volume(vol: Path, clip: Path) -> list[str]:
    root = vol / "nested"
    root.mkdir()
    (root / ".ccvault-volume.json").write_text('{"volume_uuid": "x", "catalog_id": "y"}')
    _copy(clip, root / HOUR_DIR / f"{T0}_3000.mp4")
    return ["nested"]


def _catalog(vol: Path, clip: Path) -> list[str]:
    (vol / "catalog.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 4000)
    return ["catalog.sqlite"]


def _bundle(vol: Path, clip: Path) -> list[str]:
    bundle = vol / "case-17"
    _copy(clip, bundle / "segments" / f"{T0}_3000.mp4")
    (bundle / "manifest.json").write_text("{}")
    (bundle / "manifest.sig").write_text("sig")
    return ["case-17/manifest.json", "case-17/manifest.sig", f"case-17/segments/{T0}_3000.mp4"]


def _note(vol: Path, clip: Path) -> list[str]:
    (vol / "door").mkdir()
    (vol / "door/notes.txt").write_text("not footage")
    return ["door/notes.txt"]


def _wrong_depth(vol: Path, clip: Path) -> list[str]:
    _copy(clip, vol / "door" / f"{T0}_3000.mp4")
    return [f"door/{T0}_3000.mp4"]


def _wrong_hour(vol: Path, clip: Path) -> list[str]:
    _copy(clip, vol / "door/2026/05/28/07" / f"{T0}_3000.mp4")
    return [f"door/2026/05/28/07/{T0}_3000.mp4"]


def _unknown_camera(vol: Path, clip: Path) -> list[str]:
    _copy(clip, vol / "stranger/2026/05/28/20" / f"{T0}_3000.mp4")
    return [f"stranger/2026/05/28/20/{T0}_3000.mp4"]


def _link(vol: Path, clip: Path) -> list[str]:
    (vol / HOUR_DIR).mkdir(parents=True)
    (vol / HOUR_DIR / f"{T0}_3000.mp4").symlink_to(clip)
    return [f"{HOUR_DIR}/{T0}_3000.mp4"]


def _linked_directory(vol: Path, clip: Path) -> list[str]:
    elsewhere = clip.parent / "elsewhere"
    _copy(clip, elsewhere / "2026/05/28/20" / f"{T0}_3000.mp4")
    (vol / "door").symlink_to(elsewhere)
    return ["door"]


def _does_not_probe(vol: Path, clip: Path) -> list[str]:
    (vol / HOUR_DIR).mkdir(parents=True)
    (vol / HOUR_DIR / f"{T0}_3000.mp4").write_bytes(b"\x00garbage" * 4000)
    return [f"{HOUR_DIR}/{T0}_3000.mp4"]


def _fifo(vol: Path, clip: Path) -> list[str]:
    (vol / HOUR_DIR).mkdir(parents=True)
    os.mkfifo(vol / HOUR_DIR / f"{T0}_3000.mp4")
    return [f"{HOUR_DIR}/{T0}_3000.mp4"]


PLANTED: dict[str, Callable[[Path, Path], list[str]]] = {
    "another-volumes-root": _other_volume,
    "a-catalog": _catalog,
    "an-export-bundle": _bundle,
    "a-note": _note,
    "clip-at-the-wrong-depth": _wrong_depth,
    "clip-in-the-wrong-hour": _wrong_hour,
    "clip-of-no-known-camera": _unknown_camera,
    "link-to-a-clip": _link,
    "linked-camera-directory": _linked_directory,
    "segment-name-that-does-not-probe": _does_not_probe,
    "fifo": _fifo,
}


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under root, without following links: what it is and its bytes' hash."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


@pytest.mark.parametrize("plant", PLANTED.values(), ids=PLANTED.keys())
def test_reconcile_leaves_what_is_not_proven_footage_where_it_is(
    tmp_path: Path, clip: Path, plant: Callable[[Path, Path], list[str]]
) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}])
    assert run_cli(config, "reconcile").returncode == 0  # volume initialised, catalog made
    vol = tmp_path / "hot"
    expected = plant(vol, clip)
    before = snapshot(vol)
    for args in (["--dry-run"], []):
        result = run_cli(config, "reconcile", "--json", *args)
        assert result.returncode == 1, (result.stdout, result.stderr)
        report = json.loads(result.stdout)
        assert sorted(f["path"] for f in report["foreign"]) == sorted(expected), report
        assert all(f["volume"] == "hot" and f["reason"] for f in report["foreign"])
        assert report["adopted"] == report["quarantined"] == report["duplicates"] == []
        assert snapshot(vol) == before, "nothing moved, removed or added"
    rows = json.loads(
        run_cli(
            config,
            "segments",
            "--camera",
            "door",
            "--from",
            "2026-01-01",
            "--to",
            "2027-01-01",
            "--json",
        ).stdout
    )
    assert rows == [], "nothing adopted"
