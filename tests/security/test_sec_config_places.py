"""No config can make ccvault destroy footage: areas with different keepers never overlap.

A volume inside another (or the catalog, the spool, the audit log, an export directory inside
a volume) lets reconcile adopt or quarantine the other's files. Every way of reaching one
directory twice is tried: nesting either way, the same path spelled differently, symlinks
(of the directory or of an ancestor), bind mounts, and the places that default beside the
catalog. Each is refused by check-config and by `run` (exit 2, both keys named), and nothing
is created.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli

Layout = Callable[[Path], tuple[str, list[str]]]


def config_text(
    root: Path,
    volumes: list[str],
    *,
    catalog: str = "cat/catalog.sqlite",
    extra: str = "",
) -> str:
    lines = ['timezone = "UTC"', "[storage]", f"catalog = {json.dumps(str(root / catalog))}"]
    for i, path in enumerate(volumes):
        lines += ["[[storage.volumes]]", f'name = "v{i}"', f"path = {json.dumps(str(path))}"]
    return "\n".join(lines) + "\n" + extra


def _nested(root: Path) -> tuple[str, list[str]]:
    return config_text(root, [root / "a", root / "a/b"]), [
        "storage.volumes[1].path",
        "storage.volumes[0].path",
    ]


def _nested_other_way(root: Path) -> tuple[str, list[str]]:
    return config_text(root, [root / "a/b", root / "a"]), [
        "storage.volumes[0].path",
        "storage.volumes[1].path",
    ]


def _equal_spelled_differently(root: Path) -> tuple[str, list[str]]:
    (root / "a").mkdir()
    return config_text(root, [root / "a", f"{root}/x/../a/"]), [
        "storage.volumes[1].path",
        "storage.volumes[0].path",
    ]


def _symlinked(root: Path) -> tuple[str, list[str]]:
    (root / "a/cams").mkdir(parents=True)
    (root / "link").symlink_to(root / "a/cams")
    return config_text(root, [root / "a", root / "link"]), [
        "storage.volumes[1].path",
        "storage.volumes[0].path",
    ]


def _symlinked_ancestor_not_yet_made(root: Path) -> tuple[str, list[str]]:
    (root / "a").mkdir()
    (root / "link").symlink_to(root / "a")
    return config_text(root, [root / "link/new/deeper", root / "a"]), [
        "storage.volumes[0].path",
        "storage.volumes[1].path",
    ]


def _catalog_inside(root: Path) -> tuple[str, list[str]]:
    return config_text(root, [root / "a"], catalog="a/catalog.sqlite"), [
        "storage.catalog",
        "storage.volumes[0].path",
    ]


def _catalog_inside_through_symlink(root: Path) -> tuple[str, list[str]]:
    (root / "a").mkdir()
    (root / "db").symlink_to(root / "a")
    return config_text(root, [root / "a"], catalog="db/catalog.sqlite"), [
        "storage.catalog",
        "storage.volumes[0].path",
    ]


def _volume_is_catalog_directory(root: Path) -> tuple[str, list[str]]:
    return config_text(root, [root / "cat"]), ["storage.catalog", "storage.volumes[0].path"]


def _spool_inside(root: Path) -> tuple[str, list[str]]:
    spool = json.dumps(str(root / "a/spool"))
    text = config_text(root, [root / "a"]).replace(
        "[[storage.volumes]]", f"spool = {spool}\n[[storage.volumes]]", 1
    )
    return text, ["storage.spool", "storage.volumes[0].path"]


def _volume_inside_spool(root: Path) -> tuple[str, list[str]]:
    spool = json.dumps(str(root / "s"))
    text = config_text(root, [root / "s/a"]).replace(
        "[[storage.volumes]]", f"spool = {spool}\n[[storage.volumes]]", 1
    )
    return text, ["storage.volumes[0].path", "storage.spool"]


def _spool_named_like_a_volumes_own_inside_an_export_dir(root: Path) -> tuple[str, list[str]]:
    spool = json.dumps(str(root / "share/.spool"))
    extra = f"[export]\ndir = {json.dumps(str(root / 'share'))}\n"
    text = config_text(root, [root / "a"], extra=extra).replace(
        "[[storage.volumes]]", f"spool = {spool}\n[[storage.volumes]]", 1
    )
    return text, ["storage.spool", "export.dir"]


def _audit_inside(root: Path) -> tuple[str, list[str]]:
    extra = f"[audit]\npath = {json.dumps(str(root / 'a/audit.jsonl'))}\n"
    return config_text(root, [root / "a"], extra=extra), ["audit.path", "storage.volumes[0].path"]


def _audit_is_the_catalog(root: Path) -> tuple[str, list[str]]:
    extra = f"[audit]\npath = {json.dumps(str(root / 'cat/catalog.sqlite'))}\n"
    return config_text(root, [root / "a"], extra=extra), ["audit.path", "storage.catalog"]


def _export_dir_inside(root: Path) -> tuple[str, list[str]]:
    extra = f"[export]\ndir = {json.dumps(str(root / 'a/exports'))}\n"
    return config_text(root, [root / "a"], extra=extra), ["export.dir", "storage.volumes[0].path"]


def _default_export_dir_is_a_volume(root: Path) -> tuple[str, list[str]]:
    return config_text(root, [root / "cat/exports"]), ["export.dir", "storage.volumes[0].path"]


def _allowed_dir_inside(root: Path) -> tuple[str, list[str]]:
    (root / "a/share").mkdir(parents=True)
    extra = f"[export]\nallowed_dirs = [{json.dumps(str(root / 'a/share'))}]\n"
    return config_text(root, [root / "a"], extra=extra), [
        "export.allowed_dirs[0]",
        "storage.volumes[0].path",
    ]


def _volume_inside_allowed_dir(root: Path) -> tuple[str, list[str]]:
    (root / "share").mkdir()
    extra = f"[export]\nallowed_dirs = [{json.dumps(str(root / 'share'))}]\n"
    return config_text(root, [root / "share/a"], extra=extra), [
        "storage.volumes[0].path",
        "export.allowed_dirs[0]",
    ]


def _allowed_dir_inside_expiring_export_dir(root: Path) -> tuple[str, list[str]]:
    (root / "cat/exports/kept").mkdir(parents=True)
    extra = f"[export]\nallowed_dirs = [{json.dumps(str(root / 'cat/exports/kept'))}]\n"
    return config_text(root, [root / "a"], extra=extra), ["export.allowed_dirs[0]", "export.dir"]


def _export_dir_inside_a_bundle(root: Path) -> tuple[str, list[str]]:
    bundle = root / "share/2026-05-01-door"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text("{}")
    (bundle / "manifest.sig").write_text("sig")
    extra = f"[export]\ndir = {json.dumps(str(bundle / 'more'))}\n"
    return config_text(root, [root / "a"], extra=extra), ["export.dir", "export bundle"]


def _allowed_dir_is_a_bundle(root: Path) -> tuple[str, list[str]]:
    bundle = root / "share/b1"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text("{}")
    (bundle / "manifest.sig").write_text("sig")
    extra = f"[export]\nallowed_dirs = [{json.dumps(str(root / 'share/b1/../b1'))}]\n"
    return config_text(root, [root / "a"], extra=extra), ["export.allowed_dirs[0]", "export bundle"]


LAYOUTS: dict[str, Layout] = {
    "nested": _nested,
    "nested-other-way": _nested_other_way,
    "equal-spelled-differently": _equal_spelled_differently,
    "symlinked": _symlinked,
    "symlinked-ancestor-not-yet-made": _symlinked_ancestor_not_yet_made,
    "catalog-inside": _catalog_inside,
    "catalog-inside-through-symlink": _catalog_inside_through_symlink,
    "volume-is-catalog-directory": _volume_is_catalog_directory,
    "spool-inside": _spool_inside,
    "volume-inside-spool": _volume_inside_spool,
    "spool-named-like-a-volumes-own-in-export-dir": (
        _spool_named_like_a_volumes_own_inside_an_export_dir
    ),
    "audit-inside": _audit_inside,
    "audit-is-the-catalog": _audit_is_the_catalog,
    "export-dir-inside": _export_dir_inside,
    "default-export-dir-is-a-volume": _default_export_dir_is_a_volume,
    "allowed-dir-inside": _allowed_dir_inside,
    "volume-inside-allowed-dir": _volume_inside_allowed_dir,
    "allowed-dir-inside-expiring-export-dir": _allowed_dir_inside_expiring_export_dir,
    "export-dir-inside-a-bundle": _export_dir_inside_a_bundle,
    "allowed-dir-is-a-bundle": _allowed_dir_is_a_bundle,
}


def assert_refused(root: Path, text: str, keys: list[str]) -> None:
    config = root / "ccvault.toml"
    config.write_text(text)
    before = sorted(p for p in root.rglob("*"))
    for command in (["check-config"], ["run"]):
        result = run_cli(config, *command, timeout=60)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        first_line = result.stderr.splitlines()[0]
        assert first_line.startswith(f"ccvault: error: {config}: {keys[0]}"), first_line
        assert all(key in first_line for key in keys), (keys, first_line)
    assert sorted(p for p in root.rglob("*")) == before, "a refused config creates nothing"


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_overlapping_places_are_refused_naming_both_keys(tmp_path: Path, layout: Layout) -> None:
    text, keys = layout(tmp_path)
    assert_refused(tmp_path, text, keys)


@pytest.fixture
def bind_mount(tmp_path: Path) -> Iterator[Callable[[Path, Path], None]]:
    """`mount --bind` for the test's own directories; skipped where it is not allowed."""
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


@pytest.mark.parametrize("which", ["bound-directory-inside", "bound-parent", "bound-same"])
def test_volumes_reached_through_a_bind_mount_are_refused_naming_both_keys(
    tmp_path: Path, bind_mount: Callable[[Path, Path], None], which: str
) -> None:
    (tmp_path / "disk/a/cams").mkdir(parents=True)
    if which == "bound-directory-inside":  # /mnt/x shows a/cams: a volume inside volume a
        bind_mount(tmp_path / "disk/a/cams", tmp_path / "mnt/x")
        volumes = [tmp_path / "disk/a", tmp_path / "mnt/x"]
    elif which == "bound-parent":  # /mnt/x shows disk: mnt/x/a/new is a/new, not made yet
        bind_mount(tmp_path / "disk", tmp_path / "mnt/x")
        volumes = [tmp_path / "disk/a", tmp_path / "mnt/x/a/new"]
    else:
        bind_mount(tmp_path / "disk/a", tmp_path / "mnt/x")
        volumes = [tmp_path / "disk/a", tmp_path / "mnt/x"]
    config = tmp_path / "ccvault.toml"
    config.write_text(config_text(tmp_path, volumes))
    result = run_cli(config, "check-config")
    assert result.returncode == 2, result.stdout
    assert "storage.volumes[1].path: " in result.stderr
    assert "storage.volumes[0].path" in result.stderr.split("storage.volumes[1].path: ", 1)[1]


def test_a_volumes_own_spool_and_places_beside_each_other_are_allowed(tmp_path: Path) -> None:
    """The refusals are not blanket: the default layout (catalog, exports and volumes side by
    side, the spool in a volume's `.spool`) and two volumes on one disk are fine; the shared
    disk is warned about."""
    spool = json.dumps(str(tmp_path / "a/.spool"))
    text = config_text(tmp_path, [tmp_path / "a", tmp_path / "b"]).replace(
        "[[storage.volumes]]", f"spool = {spool}\n[[storage.volumes]]", 1
    )
    config = tmp_path / "ccvault.toml"
    config.write_text(text)
    result = run_cli(config, "check-config", "--json")
    assert result.returncode == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert any(
        w.startswith("storage.volumes[1].path: on the same filesystem as storage.volumes[0].path")
        for w in warnings
    ), warnings
    assert "on the same filesystem" in result.stderr
