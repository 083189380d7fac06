"""Disk pressure: how much room each volume has, and what to free, in the fixed order.

A volume under its reserve (the low-water mark: the larger of `reserve_free_percent` and
`reserve_free_bytes`) is freed up to the high-water mark: the reserve plus one hour of current
ingest — or a tenth of the volume when an hour does not fit, so a small disk is not emptied
every time. A volume over its own `max_bytes` is brought back under it. The order is
`planner.PRESSURE_STEPS`; held and pinned footage is never chosen, nor is deleted or thinned
what ends inside each camera's newest `pressure_floor_hours`. When only that is left — or
another program fills the disk faster than footage could be freed — the volume is reported
`Blocked` (with how much of its filesystem is not footage: the used bytes minus the footage of
every volume on that filesystem, counted once per filesystem), and new segments go to the next
volume with room.

Volumes on one filesystem share its free space: what one frees relieves the others, so their
need is planned once (each volume's footage in turn, until the filesystem is back over its
reserve), and archives on one filesystem share one room.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path

import psutil

from ccvault.catalog import queries
from ccvault.config.model import Config, VolumeConfig
from ccvault.retention import candidates
from ccvault.retention.candidates import Scope
from ccvault.retention.planner import (
    MIGRATE,
    PRESSURE_STEPS,
    ArchiveRoom,
    Decision,
    Protection,
    in_floor,
    pressure_floors,
    protection_for,
    relieve,
)
from ccvault.storage.volumes import Blocked, Volume

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Space:
    volume: str
    role: str
    filesystem: int  # st_dev: volumes sharing it share `free`
    total: int
    free: int
    reserve: int
    high_water: int
    footage: int
    max_bytes: int | None
    foreign: int = 0  # bytes used on its filesystem that are not catalogued footage

    def need(self) -> tuple[int, str]:
        """Bytes to free now and the rule that asks for them (0 when none)."""
        if self.max_bytes is not None and self.footage > self.max_bytes:
            return self.footage - self.max_bytes, "max_bytes:volume"
        if self.free < self.reserve:
            return self.high_water - self.free, f"pressure:{self.volume}"
        return 0, ""

    def room(self) -> int:
        """What this volume can take without going under its reserve or over max_bytes."""
        room = self.free - self.high_water
        if self.max_bytes is not None:
            room = min(room, self.max_bytes - self.footage)
        return max(room, 0)


def ingest_per_hour(conn: sqlite3.Connection, config: Config, now_ms: int) -> int:
    return sum(
        queries.camera_activity(conn, c.name, now_ms - HOUR_MS).bytes for c in config.cameras
    )


def measure(
    config: Config, volumes: list[Volume], conn: sqlite3.Connection, now_ms: int
) -> dict[str, Space]:
    """Space on every available volume (an unavailable one is never measured: its path may
    be an empty mount point, whose free space says nothing about the volume)."""
    hour = ingest_per_hour(conn, config, now_ms)
    footage = candidates.usage(conn)[1]
    settings = {v.name: v for v in config.storage.volumes}
    devices = _devices(volumes)
    on_device: dict[int, int] = {}  # footage per filesystem, every volume on it counted
    for name, device in devices.items():
        on_device[device] = on_device.get(device, 0) + footage.get(name, 0)
    out = {}
    for volume in volumes:
        cfg = settings.get(volume.name)
        if volume.available and cfg is not None and volume.path is None:
            out[volume.name] = _bucket_space(volume, cfg.max_bytes, footage.get(volume.name, 0))
            continue
        if not volume.available or cfg is None or volume.name not in devices:
            continue
        try:
            du = psutil.disk_usage(str(volume.path))
        except OSError:
            continue
        filesystem = devices[volume.name]
        reserve = cfg.reserve_bytes(du.total)
        out[volume.name] = Space(
            volume.name,
            volume.role,
            filesystem,
            du.total,
            du.free,
            reserve,
            reserve + min(hour, du.total // 10),
            footage.get(volume.name, 0),
            cfg.max_bytes,
            max(0, du.used - on_device[filesystem]),
        )
    return out


UNBOUNDED = 1 << 62  # a bucket without max_bytes: the store grows as needed


def _bucket_space(volume: Volume, max_bytes: int | None, footage: int) -> Space:
    """An s3 volume: no filesystem, no reserve; only its max_bytes quota bounds it (each
    bucket its own "filesystem", a negative id no st_dev has)."""
    total = UNBOUNDED if max_bytes is None else max_bytes
    fake_dev = -1 - zlib.crc32(volume.name.encode())
    return Space(
        volume.name, volume.role, fake_dev, total, max(total - footage, 0), 0, 0, footage, max_bytes
    )


def _devices(volumes: list[Volume]) -> dict[str, int]:
    """The filesystem (st_dev) of each available volume."""
    out = {}
    for volume in volumes:
        if volume.available and volume.path is not None:  # an s3 bucket has no filesystem
            with contextlib.suppress(OSError):
                out[volume.name] = os.stat(volume.path).st_dev
    return out


def archive_room(spaces: dict[str, Space]) -> ArchiveRoom:
    """What each archive can take; archives on one filesystem share its room (the first in
    config order gets what it can, the next what is left), so it is never counted twice."""
    left: dict[int, int] = {}
    rooms = {}
    for space in spaces.values():
        if space.role != "archive":
            continue
        shared = left.setdefault(space.filesystem, space.room())
        rooms[space.volume] = min(space.room(), shared)
        left[space.filesystem] = shared - rooms[space.volume]
    return ArchiveRoom(rooms)


@dataclass
class PressurePlan:
    decisions: list[Decision]
    blocked: dict[str, Blocked]  # volumes left under their reserve with nothing more to take
    under: dict[str, int]  # volume → bytes needed before planning


def plan(
    conn: sqlite3.Connection,
    sc: Scope,
    spaces: dict[str, Space],
    protections: list[Protection],
    now_ms: int,
    archives: ArchiveRoom,
    taken: set[int],
) -> PressurePlan:
    out = PressurePlan([], {}, {})
    freed: dict[int, int] = {}  # filesystem -> bytes this plan frees there
    left_after: dict[str, int] = {}  # volume -> still needed after its own footage
    floors = pressure_floors(queries.last_segment_ends(conn), sc.policies, now_ms)
    for space in spaces.values():
        need, rule = space.need()
        shared = rule.startswith("pressure:")
        if shared:  # what other volumes on its filesystem free counts for it too
            need -= freed.get(space.filesystem, 0)
        if need <= 0 or space.volume not in sc.volume_ids:
            continue
        out.under[space.volume] = need
        decisions, left = _relieve_volume(
            conn, sc, space, need, rule, protections, now_ms, archives, taken, floors
        )
        out.decisions += decisions
        left_after[space.volume] = left
        if shared:
            freed[space.filesystem] = freed.get(space.filesystem, 0) + need - max(left, 0)
    for name, left in left_after.items():
        space = spaces[name]
        need, rule = space.need()
        if rule.startswith("pressure:"):  # after all its filesystem's volumes had their turn
            left = need - freed.get(space.filesystem, 0)
        # Blocked only if even this leaves the volume under its reserve (short of the
        # high-water mark is fine: that margin is a wish, the reserve is the rule).
        if left > space.high_water - space.reserve:
            held, floor = _kept(conn, sc, name, protections, now_ms, taken, floors)
            short = left - (space.high_water - space.reserve)
            out.blocked[name] = Blocked(short, space.foreign, held, floor)
    return out


def _relieve_volume(
    conn: sqlite3.Connection,
    sc: Scope,
    space: Space,
    need: int,
    rule: str,
    protections: list[Protection],
    now_ms: int,
    archives: ArchiveRoom,
    taken: set[int],
    floors: dict[str, int],
) -> tuple[list[Decision], int]:
    """This volume's footage, step by step in PRESSURE_STEPS order, until `need` is met;
    returns the decisions and what is still needed (<= 0: met)."""
    out: list[Decision] = []
    for step in PRESSURE_STEPS:
        if step.action == MIGRATE and not any(
            room > 0 for name, room in archives.free.items() if name != space.volume
        ):
            continue
        for batch in candidates.volume_oldest(conn, sc, space.volume):
            decisions, need = relieve(
                step, batch, need, rule, sc.policies, protections, now_ms, archives, taken, floors
            )
            out += decisions
            if need <= 0:
                return out, need
    return out, need


def _kept(
    conn: sqlite3.Connection,
    sc: Scope,
    volume: str,
    protections: list[Protection],
    now_ms: int,
    taken: set[int],
    floors: dict[str, int],
) -> tuple[int, int]:
    """Bytes of footage pressure left on a blocked volume: held or pinned, and inside the
    floor (a walk over the volume, only when it is blocked)."""
    held = floor = 0
    for batch in candidates.volume_oldest(conn, sc, volume):
        for c in batch:
            if c.id in taken:
                continue
            if protection_for(c, protections, now_ms) is not None:
                held += c.bytes
            elif in_floor(c, floors):
                floor += c.bytes
    return held, floor


def low_filesystems(paths: dict[str, Path], volumes: list[Volume]) -> dict[str, int]:
    """Free bytes of each named path (the catalog's directory, the spool) that is not on an
    available volume's filesystem and is under the default reserve. ccvault cannot free space
    there by purging footage, so these are reported, never acted on."""
    devices = set(_devices(volumes).values())
    floor = VolumeConfig.model_fields["reserve_free_bytes"].default
    percent = VolumeConfig.model_fields["reserve_free_percent"].default
    low = {}
    for what, path in paths.items():
        try:
            if os.stat(path).st_dev in devices:
                continue
            du = psutil.disk_usage(str(path))
        except OSError:
            continue
        if du.free < max(floor, int(du.total * percent / 100)):
            low[what] = du.free
    return low
