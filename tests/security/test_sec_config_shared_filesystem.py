"""Two volumes on one filesystem share its space, and ccvault counts it once.

Allowed (check-config warns), but status, the forecast and disk pressure must not count the
shared free space twice: a store that believes it has twice the room it has promises days it
cannot keep, and pressure that frees the same shortfall once per volume deletes footage it
did not need to. A small tmpfs the test mounts makes every byte of it exact.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cli_json, run_cli, write_config
from tests.peers import make_clip
from tests.test_disk_pressure import add_ballast, free_bytes, mounted_tmpfs

RESERVE = 8 << 20


def _config(tmp_path: Path, disk: Path, order: tuple[str, ...] = ("a", "b")) -> Path:
    volumes = [
        {
            "name": name,
            "path": str(disk / name),
            "role": "hot",
            "reserve_free_bytes": RESERVE,
            "reserve_free_percent": 0,
        }
        for name in order
    ]
    config = write_config(
        tmp_path, [{"name": "door", "url": "demo://", "enabled": False}], volumes=volumes
    )
    with config.open("a") as f:
        # No pressure floor: every clip here is days old, so a floor would keep them all.
        f.write("\n[retention]\nmin_days = 1\npressure_floor_hours = 0\n")
    return config


@pytest.fixture
def shared_disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(config, disk): volumes a and b, both hot, on one 48 MiB tmpfs; catalog elsewhere."""
    with mounted_tmpfs(tmp_path / "disk", 48) as disk:
        yield _config(tmp_path, disk), disk


def _import_onto_both(config: Path, disk: Path, tmp_path: Path, hours_ago: list[float]) -> None:
    """Import clips onto a, then (with a config listing b first) onto b, ten minutes later."""
    clip = make_clip(tmp_path / "clip.mp4", 10, width=640, height=360)
    now = time.time()
    for shift, order in ((0, ("a", "b")), (600, ("b", "a"))):  # import fills the first hot one
        _config(tmp_path, disk, order)
        for hours in hours_ago:
            start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - hours * 3600 + shift))
            done = run_cli(config, "import", "--camera", "door", "--start", start, str(clip))
            assert done.returncode == 0, done.stderr
    _config(tmp_path, disk)


def test_status_and_forecast_count_a_shared_filesystem_once(
    shared_disk: tuple[Path, Path], tmp_path: Path
) -> None:
    config, disk = shared_disk
    _import_onto_both(config, disk, tmp_path, [3, 2])
    st = os.statvfs(disk)
    total, free = st.f_blocks * st.f_frsize, free_bytes(disk)
    status = cli_json(config, "status")
    used = {v["name"]: v["footage_bytes"] for v in status["volumes"]}
    assert used["a"] > 0 and used["b"] > 0, "footage on both volumes"
    r = status["retention"]
    rate = r["bytes_per_day"]
    assert rate > 0
    assert r["days"] == round((total - RESERVE) / rate, 2), "the disk's size, once"
    assert r["headroom_days"] == round((free - RESERVE) / rate, 2), "its free space, once"
    forecasts = {v["name"]: v["forecast"] for v in status["volumes"]}
    assert forecasts["a"]["shares_filesystem_with"] == ["b"]
    assert forecasts["b"]["shares_filesystem_with"] == ["a"]
    warned = run_cli(config, "check-config")
    assert warned.returncode == 0 and "on the same filesystem" in warned.stderr


def test_pressure_on_a_shared_filesystem_frees_the_shortfall_once(
    shared_disk: tuple[Path, Path], tmp_path: Path
) -> None:
    config, disk = shared_disk
    _import_onto_both(config, disk, tmp_path, [72, 70, 68, 66])
    status = cli_json(config, "status")
    per_volume = min(v["footage_bytes"] for v in status["volumes"])
    need = per_volume // 3  # either volume alone can free it
    add_ballast(disk, RESERVE - need)
    need = RESERVE - free_bytes(disk)
    result = run_cli(config, "purge", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    pressure = [a for a in json.loads(result.stdout)["actions"] if a["rule"].startswith("pressure")]
    freed = sum(a["bytes"] for a in pressure)
    largest = max(a["bytes"] for a in pressure)
    assert need <= freed < need + largest, (need, freed, sorted({a["volume"] for a in pressure}))
