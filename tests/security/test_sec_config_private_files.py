"""The catalog (and its WAL), the audit log, the signing key and catalog backups are 0600
whoever starts ccvault: a umask of 000 does not widen them, and files left wider (an older
ccvault's 0640, a restore, a careless chmod) are tightened on use and the change is logged."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_config


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Every child of this test starts with umask 000, the worst an operator's shell has."""
    before = os.umask(0)
    yield
    os.umask(before)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _use_everything(config: Path, root: Path, backup_dir: Path) -> str:
    """Open the catalog, append to the audit log, load (or make) the key, write a backup."""
    export = run_cli(
        config,
        "export",
        "--camera",
        "door",
        "--from",
        "-1h",
        "--to",
        "now",
        "--reason",
        "t",
        "--out",
        str(root / "exports/b1"),
    )
    assert export.returncode == 3, export.stderr  # no footage: but the key is loaded or made
    backup = run_cli(config, "backup", str(backup_dir))
    assert backup.returncode == 0, backup.stderr
    return export.stderr + backup.stderr


def test_catalog_audit_log_key_and_backups_are_0600_whatever_the_umask(
    tmp_path: Path, open_umask: None
) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}])
    _use_everything(config, tmp_path, tmp_path / "bk1")
    private = [
        tmp_path / "catalog.sqlite",
        tmp_path / "audit.jsonl",
        tmp_path / "signing-key.pem",
        *(tmp_path / "bk1").iterdir(),
        *tmp_path.glob("catalog.sqlite-*"),
    ]
    assert len(private) >= 5
    assert {str(p): _mode(p) for p in private} == {str(p): 0o600 for p in private}

    for path in private[:3] + list(tmp_path.glob("catalog.sqlite-*")):
        path.chmod(0o644)  # left readable to everyone
    logged = _use_everything(config, tmp_path, tmp_path / "bk2")
    assert {str(p): _mode(p) for p in private[:3]} == {str(p): 0o600 for p in private[:3]}
    assert all(_mode(p) == 0o600 for p in (tmp_path / "bk2").iterdir())
    assert "file.mode_tightened" in logged
