"""The catch-up after a catalog outage killed at every step (issue 16, item 4).

What waited in the spool while PostgreSQL was out of reach is stored by ordinary ingest, in
order. Here that replay is SIGKILLed (tests/crash_step.py ingest) at each step boundary of
`SegmentStore.add` — source fsynced, linked, directory fsynced, row committed, source removed
— on the second of four waiting segments; the next scan finishes the job. Every segment ends
catalogued exactly once, its file where its row says, and the spool empty.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ccvault.catalog.audit import audit_log
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.host.clock import SystemClock
from ccvault.ingest.spool import Ingestor
from ccvault.storage import store as store_module
from ccvault.storage.media import sha256_file
from ccvault.storage.store import SegmentStore
from ccvault.storage.volumes import open_volumes, spool_dirs
from tests.conftest import REPO, pg_catalog, write_config
from tests.peers import make_clip
from tests.peers.postgres import PostgresServer, postgres_available

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL 15 is not installed"),
]

STEPS = ["add.synced", "add.linked", "add.dir_synced", "add.committed", "add.source_removed"]
FIRST_S = 1_790_000_000  # the waiting segments' wall-clock start (s)
WAITING = 4


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    return [make_clip(folder / f"{i}.mp4", 2) for i in range(WAITING)]


def _spool(config_path: Path, clips: list[Path]) -> list[str]:
    """The volume initialised, then four finished segments waiting in its spool as ffmpeg
    leaves them (files and their list); their SHA-256s, in order."""
    config = load(config_path).config
    writer = CatalogWriter(config.catalog_target, audit_log(config), config.lock_base)
    run = spool_dirs(config, open_volumes(config, writer, SystemClock().wall_ms())).record
    writer.close()
    run = run / "door" / "1"
    run.mkdir(parents=True)
    lines = []
    for i, clip in enumerate(clips):
        shutil.copyfile(clip, run / f"{i:06d}.mp4")
        start = FIRST_S + 2 * i
        lines.append(f"{i:06d}.mp4,{start}.000000,{start + 2}.000000\n")
    (run / "segments.csv").write_text("".join(lines))
    return [sha256_file(c) for c in clips]


def _scan(config_path: Path) -> None:
    config = load(config_path).config
    clock = SystemClock()
    writer = CatalogWriter(config.catalog_target, audit_log(config), config.lock_base)
    volumes = open_volumes(config, writer, clock.wall_ms())
    Ingestor(
        SegmentStore(writer, lambda: volumes, clock), spool_dirs(config, volumes).drain, set
    ).scan()
    writer.close()


@pytest.mark.parametrize("step", STEPS)
def test_a_catch_up_killed_at_any_step_stores_every_waiting_segment_once(
    tmp_path: Path, clips: list[Path], postgres_server: PostgresServer, pg_database: str, step: str
) -> None:
    catalog = pg_catalog(postgres_server, pg_database, tmp_path)
    config_path = write_config(tmp_path, [{"name": "door", "url": "demo://"}], catalog=catalog)
    hashes = _spool(config_path, clips)

    killed = subprocess.run(
        [sys.executable, "-m", "tests.crash_step", "ingest", str(config_path), step, "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr  # it died at the step, not before
    _scan(config_path)

    config = load(config_path).config
    with CatalogWriter(config.catalog_target, None, config.lock_base).reader() as conn:
        rows = conn.execute(
            "SELECT start_ms, path, sha256 FROM segments ORDER BY start_ms"
        ).fetchall()
    assert [r[0] for r in rows] == [(FIRST_S + 2 * i) * 1000 for i in range(WAITING)]
    assert [r[2] for r in rows] == hashes
    hot = tmp_path / "hot"
    assert {str(p.relative_to(hot)) for p in (hot / "door").rglob("*.mp4")} == {r[1] for r in rows}
    for _start, path, sha in rows:
        assert sha256_file(hot / path) == sha
    assert not list((hot / ".spool").rglob("*.mp4")), "the spool is emptied"


def test_the_steps_are_every_checkpoint_of_the_store() -> None:
    """STEPS is the store's own list: a new step boundary must get its crash test."""
    found = re.findall(r'self\.checkpoint\("([\w.]+)"\)', Path(store_module.__file__).read_text())
    assert found == STEPS
