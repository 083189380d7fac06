"""A catalog deleted or replaced under a running daemon loses nothing, and nothing is written
into whatever took its place (issue 14, item 5).

The real daemon records a real demo camera. Someone deletes the catalog (with its WAL and index),
or moves another catalog over it. The daemon must raise `catalog_error`, stop writing (no segment
placed on a volume for a row it cannot commit, no byte of the other catalog changed), keep the
segments in the spool, and — once this catalog's backup is restored at the path — reopen it,
adopt what was stored after the backup, store what waited, and end with every segment of the
whole run catalogued exactly once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from ccvault.catalog.writer import CatalogWriter
from ccvault.ingest.spool import read_list
from ccvault.timefmt import utc_text
from tests.conftest import cli_json, run_cli, wait_for, write_config
from tests.test_disk_pressure import event_ms, ingested, stop

SEGMENT_S = 2
CAMERA = {"name": "door", "url": "demo://?width=640&height=360"}
COMPANIONS = ("", "-wal", "-shm")


def spooled(spool: Path) -> list[Path]:
    """Finished segments waiting in the spool (listed by ffmpeg, file still there)."""
    return [
        run / entry.name
        for run in sorted(spool.glob("door/*"))
        if run.is_dir()
        for entry in read_list(run / "segments.csv")
        if (run / entry.name).exists()
    ]


def volume_files(volume: Path) -> set[str]:
    return {str(p.relative_to(volume)) for p in (volume / "door").rglob("*.mp4")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["deleted", "replaced-by-another-catalog"])
def test_catalog_gone_under_the_daemon_keeps_footage_in_the_spool_until_it_is_restored(
    tmp_path: Path, daemon_factory, attack: str
) -> None:
    config = write_config(tmp_path, [CAMERA], segment_seconds=SEGMENT_S, offline_after=60)
    with config.open("a") as f:
        f.write("\n[alerts]\ncheck_seconds = 1\n")
    catalog, volume = tmp_path / "catalog.sqlite", tmp_path / "hot"
    added = run_cli(config, "user", "add", "ann", "--role", "viewer")
    assert added.returncode == 0, added.stderr
    ann = {"Authorization": f"Bearer {added.stdout.strip()}"}
    daemon = daemon_factory(config)
    started_ms = int(time.time() * 1000)
    try:
        _attack_and_restore(tmp_path, config, daemon, catalog, volume, attack, ann)
    finally:
        (tmp_path / "daemon.log").write_text("".join(daemon.raw))
    assert stop(daemon, tmp_path) == 0

    # Nothing lost, nothing doubled: one catalogued segment after the other, from the first to
    # the last, each file holding the bytes its row names.
    listed = cli_json(
        config,
        "segments",
        "--camera",
        "door",
        "--from",
        utc_text(started_ms - 60_000),
        "--to",
        utc_text(int(time.time() * 1000)),
    )
    starts = [s["start_ms"] for s in listed]
    assert len(starts) == len(set(starts)), "a segment catalogued twice"
    logged = {e["start_ms"] for e in ingested(daemon, "door")}
    assert logged <= set(starts), f"stored, then lost: {sorted(logged - set(starts))}"
    ordered = sorted(listed, key=lambda s: s["start_ms"])
    gaps = [b["start_ms"] - a["end_ms"] for a, b in itertools.pairwise(ordered)]
    assert max(gaps) < 1000, f"footage missing between segments: {gaps}"
    for seg in listed:
        assert digest(Path(seg["path"])) == seg["sha256"], seg
    assert {str(Path(s["path"]).relative_to(volume)) for s in listed} == volume_files(volume)
    reconciled = run_cli(config, "reconcile", "--json")
    assert reconciled.returncode == 0, reconciled.stderr
    assert json.loads(reconciled.stdout)["missing"] == []
    assert run_cli(config, "audit", "verify").returncode == 0
    # The outage is on record too, though it happened while no catalog could take the row.
    history = cli_json(config, "alerts")
    assert [a for a in history["recent"] if a["name"] == "catalog_error"], history


def _attack_and_restore(
    tmp_path: Path,
    config: Path,
    daemon,
    catalog: Path,
    volume: Path,
    attack: str,
    ann: dict[str, str],
) -> None:
    api = daemon.wait_event("http.listening", timeout=5)["url"]
    wait_for(lambda: len(ingested(daemon, "door")) >= 3, 30, what="three segments stored")
    backup = Path(cli_json(config, "backup", str(tmp_path / "backup"))["catalog"])
    after_backup = len(ingested(daemon, "door")) + 2  # stored after the backup: adopted later
    wait_for(lambda: len(ingested(daemon, "door")) >= after_backup, 20, what="two more segments")

    other = tmp_path / "other.sqlite"
    if attack == "deleted":
        for suffix in COMPANIONS:
            os.unlink(f"{catalog}{suffix}")
    else:
        CatalogWriter(other).close()  # another installation's (empty) catalog
        other_digest = digest(other)
        os.replace(other, catalog)
    fired = daemon.wait_event("alert.fired", timeout=10, alert="catalog_error")
    assert fired["severity"] == "critical", fired
    assert str(catalog) in fired["summary"], fired

    # Meanwhile: footage waits in the spool, nothing is placed on the volume, nothing written
    # into what sits at the catalog's path.
    placed = volume_files(volume)
    wait_for(lambda: len(spooled(volume / ".spool")) >= 3, 20, what="segments waiting in the spool")
    assert volume_files(volume) == placed, "a segment placed for a row that cannot commit"
    assert not [e for e in ingested(daemon, "door") if event_ms(e) > event_ms(fired)]
    # The API neither answers from nor audits into what sits there: 503, try again later.
    refused = httpx.get(f"{api}/api/cameras", headers=ann, timeout=10)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "busy", refused.text
    if attack == "deleted":
        assert not catalog.exists(), "an empty catalog was created at the path"
    else:
        assert digest(catalog) == other_digest, "the other catalog was written to"
        catalog.unlink()  # the operator takes it away again
    for suffix in COMPANIONS[1:]:
        assert not Path(f"{catalog}{suffix}").exists(), "the old catalog's log is left behind"

    shutil.copyfile(backup, catalog)  # restored from the backup
    daemon.wait_event("catalog.reopened", timeout=10)
    daemon.wait_event("alert.resolved", timeout=10, alert="catalog_error")
    waiting = spooled(volume / ".spool")
    wait_for(
        lambda: not any(p.exists() for p in waiting), 30, what="the spool stored after restore"
    )
    assert httpx.get(f"{api}/api/cameras", headers=ann, timeout=10).status_code == 200
    count = len(ingested(daemon, "door"))
    wait_for(lambda: len(ingested(daemon, "door")) >= count + 2, 20, what="recording goes on")
