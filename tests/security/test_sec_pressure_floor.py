"""Another program filling the disk never makes pressure eat the newest footage (issue 14,
item 10).

A small real filesystem (a tmpfs the test mounts) holds the first volume; a filler process
writes to it as fast as it can and keeps writing whatever is freed. Disk pressure may delete old
footage (inside min_days too, with premature_deletion), but each camera's newest 24 hours
(`pressure_floor_hours`) stay; the volume is `volume_low` (critical), naming how much of it is
not footage; and recording goes on on the second volume. Needs root (to mount the tmpfs).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_json, wait_for, write_config
from tests.retention_seed import DAY_MS, seed
from tests.test_disk_pressure import (
    event_ms,
    events,
    hot_volume,
    ingested,
    mounted_tmpfs,
    segments_between,
    sha256,
    stop,
)

SEGMENT_S = 2
CAMERA = {"name": "door", "url": "demo://?width=640&height=360"}
FILLER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
chunk = b"x" * 65536
while not os.path.exists(sys.argv[2]):
    try:
        os.write(fd, chunk)
    except OSError:
        time.sleep(0.02)  # full: take whatever is freed next
"""


@pytest.mark.slow
def test_a_disk_filled_by_another_program_keeps_each_cameras_newest_day(
    tmp_path: Path, daemon_factory
) -> None:
    with mounted_tmpfs(tmp_path / "small-disk", 32) as disk:
        small, big = disk / "small", tmp_path / "big"
        config = write_config(
            tmp_path,
            [CAMERA],
            segment_seconds=SEGMENT_S,
            offline_after=60,
            volumes=[hot_volume("small", small, "8 MiB"), hot_volume("big", big, 0)],
        )
        config.write_text(config.read_text() + "\n[alerts]\ncheck_seconds = 1\n")
        now = int(time.time()) * 1000
        old_at, recent_at = now - 2 * DAY_MS, now - 3 * 3_600_000
        seeded = seed(
            config,
            [{"camera": "door", "start_ms": old_at + i * 2000, "volume": "small"} for i in range(8)]
            + [
                {"camera": "door", "start_ms": recent_at + i * 2000, "volume": "small"}
                for i in range(8)
            ],
            tmp_path / "cache",
        )
        recent = [s for s in seeded if s.start_ms >= recent_at]
        daemon = daemon_factory(config)
        filler = None
        try:
            wait_for(lambda: len(ingested(daemon, "door")) >= 2, 30, what="recording on small")
            filler = subprocess.Popen(
                [sys.executable, "-c", FILLER, str(disk / "filler"), str(tmp_path / "stop")]
            )
            fired = daemon.wait_event("alert.fired", timeout=40, alert="volume_low", volume="small")
            wait_for(
                lambda: len([e for e in ingested(daemon, "door") if e["volume"] == "big"]) >= 3,
                30,
                what="recording goes on on the other volume",
            )
            low = next(
                a
                for a in cli_json(config, "alerts")["active"]
                if a["name"] == "volume_low" and a["labels"] == {"volume": "small"}
            )
            filled = (disk / "filler").stat().st_size
        finally:
            (tmp_path / "stop").touch()
            if filler is not None:
                filler.wait(10)
            (tmp_path / "daemon.log").write_text("".join(daemon.raw))
        assert stop(daemon, tmp_path) == 0
        listed = {s["id"]: s for s in segments_between(config, "door", old_at, now + DAY_MS)}
        intact = {i: sha256(s["path"]) == s["sha256"] for i, s in listed.items()}

    assert fired["severity"] == "critical", fired
    assert "not footage" in fired["summary"], fired
    assert low["severity"] == "critical", low
    foreign = int(low["details"]["foreign_bytes"])
    # The filler's file, measured when the test asked (it grows by what pressure frees).
    assert abs(foreign - filled) <= 4 * (1 << 20), (filled, foreign)
    assert events(daemon, "held_footage_blocking") == [], "nothing is held here"
    # Pressure did delete old footage (inside min_days: premature, and said so) ...
    assert events(daemon, "premature_deletion"), "the two-day-old footage was freed"
    assert not [s for s in seeded if s.start_ms < recent_at and s.id in listed]
    # ... but never the newest day: neither what was seeded three hours ago nor anything the
    # daemon recorded, on either volume.
    for s in recent:
        assert s.id in listed, f"segment {s.id} from three hours ago was deleted"
    assert all(intact.values()), intact
    recorded = {e["segment_id"] for e in ingested(daemon, "door")}
    assert recorded <= set(listed), f"recorded footage deleted: {sorted(recorded - set(listed))}"
    moved = [e for e in ingested(daemon, "door") if event_ms(e) > event_ms(fired)]
    assert moved and {e["volume"] for e in moved} == {"big"}, moved
