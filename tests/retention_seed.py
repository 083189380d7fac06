"""A real catalog with real (small) segment files, backdated, for retention tests.

Footage is placed through `SegmentStore.add`, the daemon's own path, so files, rows, usage
counters and paths are exactly what recording would have produced — only older.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccvault.catalog.audit import audit_log
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.host.clock import SystemClock
from ccvault.storage.media import probe, sha256_file
from ccvault.storage.store import SegmentStore
from ccvault.storage.volumes import open_volumes
from tests.peers import make_clip

DAY_MS = 86_400_000
_CLIPS: dict[float, Path] = {}


def clip(cache: Path, seconds: float = 2.0) -> Path:
    """One tiny real H.264 clip, made once per test session and copied for every segment."""
    cache.mkdir(parents=True, exist_ok=True)
    if seconds not in _CLIPS or not _CLIPS[seconds].exists():
        _CLIPS[seconds] = make_clip(
            cache / f"seed-{seconds}.mp4", seconds, 160, 90, fps=5, keyint_s=1.0
        )
    return _CLIPS[seconds]


@dataclass(frozen=True)
class Seeded:
    id: int
    camera: str
    start_ms: int
    end_ms: int
    path: Path
    activity: bool


def seed(config: Path, footage: list[dict[str, Any]], cache: Path) -> list[Seeded]:
    """footage: dicts with camera, start_ms, [seconds=2], [activity=False], [analysed=True],
    [volume: place on this volume instead of the default target]."""
    loaded = load(config).config
    writer = CatalogWriter(loaded.catalog_target, audit_log(loaded), loaded.lock_base)
    clock = SystemClock()
    volumes = open_volumes(loaded, writer, clock.wall_ms())
    out = []
    for item in footage:
        seconds = item.get("seconds", 2.0)
        src = clip(cache, seconds)
        media = probe(src)
        target = [v for v in volumes if v.name == item["volume"]] if "volume" in item else volumes
        store = SegmentStore(writer, lambda target=target: target, clock)
        tmp = cache / "seed-tmp.mp4"
        shutil.copyfile(src, tmp)
        end_ms = item["start_ms"] + round(seconds * 1000)
        stored = store.add(
            tmp, item["camera"], item["start_ms"], end_ms, media, sha256_file(tmp), "imported"
        )
        assert stored.segment_id is not None, stored
        with writer.transaction() as conn:
            conn.execute(
                "UPDATE segments SET analysis = ?, activity = ? WHERE id = ?",
                (
                    1 if item.get("analysed", True) else 0,
                    int(item.get("activity", False)),
                    stored.segment_id,
                ),
            )
        out.append(
            Seeded(
                stored.segment_id,
                item["camera"],
                item["start_ms"],
                end_ms,
                stored.path,
                bool(item.get("activity", False)),
            )
        )
    writer.close()
    return out
