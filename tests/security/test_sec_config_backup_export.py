"""Directories chosen at run time obey the same rule as the config: a catalog backup or an
export bundle never lands inside a volume or the spool, whose keepers would adopt, quarantine
or expire it, nor inside another bundle, which would stop verifying."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_config
from tests.peers import make_clip


def _bundle(root: Path) -> Path:
    bundle = root / "share/b1"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text("{}")
    (bundle / "manifest.sig").write_text("sig")
    return bundle


BACKUP_DIRS: dict[str, Callable[[Path], Path]] = {
    "inside-the-volume": lambda root: root / "hot/backups",
    "the-volume-itself": lambda root: root / "hot",
    "in-the-volumes-spool": lambda root: root / "hot/.spool/bk",
    "through-a-symlink": lambda root: (root / "link").symlink_to(root / "hot") or root / "link/bk",
    "spelled-with-dots": lambda root: root / "elsewhere/../hot/./bk",
    "inside-a-bundle": lambda root: _bundle(root) / "bk",
}


@pytest.mark.parametrize("where", BACKUP_DIRS.values(), ids=BACKUP_DIRS.keys())
def test_a_catalog_backup_inside_a_volume_is_refused(
    tmp_path: Path, where: Callable[[Path], Path]
) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}])
    assert run_cli(config, "reconcile").returncode == 0  # the volume and catalog exist
    before = sorted((tmp_path / "hot").rglob("*"))
    target = where(tmp_path)
    result = run_cli(config, "backup", str(target))
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"ccvault: error: backup: {target}: inside ")
    assert sorted((tmp_path / "hot").rglob("*")) == before, "nothing written into the volume"
    assert not list(tmp_path.rglob("catalog-*.sqlite"))
    ok = run_cli(config, "backup", str(tmp_path / "backups"))
    assert ok.returncode == 0, ok.stderr  # beside the volume is fine


@pytest.fixture
def bind_mount() -> Iterator[Callable[[Path, Path], None]]:
    mounted: list[Path] = []

    def bind(source: Path, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"mount --bind is not allowed here: {done.stderr.decode().strip()}")
        mounted.append(target)

    yield bind
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], check=False)


def test_an_export_into_a_volume_mounted_inside_an_allowed_dir_is_refused(
    tmp_path: Path, bind_mount: Callable[[Path, Path], None]
) -> None:
    """The allowed share is fine in the config; a volume bind-mounted into it later must not
    receive a bundle (reconcile would take its files for strays)."""
    (tmp_path / "share").mkdir()
    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}])
    with config.open("a") as f:
        f.write(f'\n[export]\nallowed_dirs = ["{tmp_path / "share"}"]\n')
    clip = make_clip(tmp_path / "clip.mp4", 3)
    imported = run_cli(config, "import", "--camera", "door", "--start", "-1h", str(clip))
    assert imported.returncode == 0, imported.stderr
    bind_mount(tmp_path / "hot", tmp_path / "share/hot")
    before = sorted((tmp_path / "hot").rglob("*"))
    result = run_cli(
        config,
        "export",
        "--camera",
        "door",
        "--from",
        "-2h",
        "--to",
        "now",
        "--reason",
        "test",
        "--out",
        str(tmp_path / "share/hot/case-1"),
    )
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert "storage.volumes[0].path" in result.stderr
    assert sorted((tmp_path / "hot").rglob("*")) == before
