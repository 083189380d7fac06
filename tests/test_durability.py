"""Durability bugs found while reading the code (issue 13), each reproduced for real:

* a new day directory (and its camera/year/month parents) must be fsynced, with the parent
  holding its entry, before the first segment row in it commits — else a power cut can lose
  the directory and every fsynced segment inside it;
* segments an import stored but had not analysed when it died must be analysed after a
  restart, not left "being analysed by the import" for ever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccvault.catalog.audit import audit_log
from ccvault.catalog.rows import AnalysisState
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.host.clock import SystemClock
from ccvault.host.lock import import_running
from ccvault.motion.scheduler import reset_interrupted
from ccvault.storage.media import probe, sha256_file
from ccvault.storage.store import SegmentStore
from ccvault.storage.volumes import open_volumes
from tests.conftest import REPO, wait_for, write_config
from tests.peers import make_clip


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every directory fsynced from now on, in order (read back from the descriptor)."""
    synced: list[Path] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        real(fd)
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if path.is_dir():
            synced.append(path)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_a_new_day_directory_is_durable_before_its_first_segment_row(
    tmp_path: Path, fsynced: list[Path]
) -> None:
    config = load(write_config(tmp_path, [{"name": "door", "url": "demo://"}])).config
    writer = CatalogWriter(config.catalog_target, audit_log(config))
    volumes = open_volumes(config, writer, SystemClock().wall_ms())
    store = SegmentStore(writer, lambda: volumes, SystemClock())
    clip = make_clip(tmp_path / "clip.mp4", 2)
    at_commit: list[Path] = []
    add_row = writer.segments.add

    def add(*args: object) -> int | None:
        at_commit.extend(fsynced)  # what was durable when the row went in
        return add_row(*args)  # type: ignore[arg-type]

    writer.segments.add = add  # type: ignore[method-assign]
    media = probe(clip)
    start_ms = 1_790_000_000_000
    stored = store.add(
        clip, "door", start_ms, start_ms + media.duration_ms, media, sha256_file(clip), "recorded"
    )
    root = tmp_path / "hot"
    new_dirs = [d for d in stored.path.parents if d.is_relative_to(root / "door")]
    assert [d.relative_to(root).as_posix() for d in new_dirs[::-1]] == [
        "door",
        "door/2026",
        "door/2026/09",
        "door/2026/09/21",
        "door/2026/09/21/14",
    ]
    for directory in new_dirs:
        assert directory in at_commit, f"{directory} was not fsynced before the row"
        assert directory.parent in at_commit, f"{directory.parent} was not fsynced"
    writer.close()


@pytest.mark.slow
def test_a_crashed_imports_segments_are_analysed_after_a_restart(
    tmp_path: Path, daemon_factory
) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    clip = make_clip(tmp_path / "sd-card.mp4", 12, motion_windows=((4, 7),))
    died = subprocess.run(
        [sys.executable, "-m", "tests.crash_step", "import", str(config), "door", "-1h", str(clip)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    catalog = tmp_path / "catalog.sqlite"
    writer = CatalogWriter(catalog)
    with writer.reader() as conn:
        states = [r[0] for r in conn.execute("SELECT analysis FROM segments")]
    assert states and set(states) == {AnalysisState.BY_IMPORT}

    daemon_factory(config)

    def analysed() -> bool:
        with writer.reader() as conn:
            return {r[0] for r in conn.execute("SELECT analysis FROM segments")} == {
                AnalysisState.ANALYSED
            }

    wait_for(analysed, 60, what="the crashed import's segments analysed by the daemon")
    with writer.reader() as conn:
        spans = conn.execute("SELECT COUNT(*) FROM motion_spans WHERE kind = 'motion'")
        assert spans.fetchone()[0] >= 1  # the motion in the clip was found after all
    writer.close()


def test_a_running_imports_segments_are_left_to_it(tmp_path: Path) -> None:
    config = load(write_config(tmp_path, [{"name": "door", "url": "demo://"}])).config
    writer = CatalogWriter(config.catalog_target)
    volumes = open_volumes(config, writer, SystemClock().wall_ms())
    store = SegmentStore(writer, lambda: volumes, SystemClock())
    clip = make_clip(tmp_path / "clip.mp4", 2)
    media, now = probe(clip), int(time.time() * 1000)
    store.add(
        clip,
        "door",
        now,
        now + media.duration_ms,
        media,
        sha256_file(clip),
        "imported",
        AnalysisState.BY_IMPORT,
    )
    with import_running(config.storage.catalog):
        assert reset_interrupted(writer) == 0  # its own process analyses it
    assert reset_interrupted(writer) == 1
    with writer.reader() as conn:
        assert conn.execute("SELECT analysis FROM segments").fetchone()[0] == 0
    writer.close()
