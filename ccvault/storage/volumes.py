"""Storage volumes and their identity, so a missing disk is never read as "all footage gone".

Each volume root holds `.ccvault-volume.json` naming the volume's uuid and the catalog's id
(an s3 volume: the object of that name under its prefix, `storage.objects`). A volume the
catalog knows whose identity is missing or different is `unavailable`: never written to, never
purged, never re-initialised except by `ccvault volume init|replace`. An s3 volume is never
initialised implicitly either: a wrong bucket or prefix is never written.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psutil
import structlog

from ccvault.catalog import queries
from ccvault.catalog.rows import VolumeRow
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config, VolumeConfig
from ccvault.config.places import SPOOL_DIR
from ccvault.errors import CheckFailed, NotFound, Refused
from ccvault.host.durable import fsync_dir, make_dirs
from ccvault.storage.objects import Bucket, ObjectStoreError, bucket_of

log = structlog.get_logger("ccvault.volumes")

IDENTITY_FILE = ".ccvault-volume.json"
QUARANTINE_DIR = "quarantine"


@dataclass(frozen=True, slots=True)
class Volume:
    name: str
    path: Path | None  # a directory volume's root; None for an s3 volume
    role: str
    available: bool
    reason: str  # why unavailable; "" when available
    # False while only held footage is left on a full volume: new segments go elsewhere.
    accepting: bool = True
    bucket: Bucket | None = None  # an s3 volume's bucket

    @property
    def state(self) -> str:
        return "available" if self.available else "unavailable"

    @property
    def where(self) -> str:
        """Its root as people read it: a directory, or s3://bucket/prefix."""
        return self.bucket.where() if self.bucket is not None else str(self.path)


def read_identity(path: Path) -> dict | None:
    try:
        data = json.loads((path / IDENTITY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_identity(path: Path, volume_uuid: str, catalog_id: str, name: str) -> None:
    """Atomically (tmp, fsync, rename, fsync dir), so a crash leaves the old identity or the new."""
    make_dirs(path)
    tmp = path / f"{IDENTITY_FILE}.tmp"
    data = {"volume_uuid": volume_uuid, "catalog_id": catalog_id, "name": name}
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / IDENTITY_FILE)
    fsync_dir(path)


def local_roots(volumes: list[Volume]) -> dict[str, Path]:
    """Name → root of every available directory volume (an s3 volume has no files here)."""
    return {v.name: v.path for v in volumes if v.available and v.path is not None}


def readable_roots(volumes: list[Volume]) -> dict[str, Path | Bucket]:
    """Name → where each available volume's segments are read: a directory or a bucket."""
    return {**local_roots(volumes), **buckets(volumes)}


def buckets(volumes: list[Volume]) -> dict[str, Bucket]:
    """Name → bucket of every available s3 volume."""
    return {v.name: v.bucket for v in volumes if v.available and v.bucket is not None}


def _identity(cfg: VolumeConfig) -> dict | None:
    """The volume's identity (file or marker object); ObjectStoreError: server unreachable."""
    if cfg.path is None:
        return bucket_of(cfg).read_marker()
    return read_identity(cfg.path)


def _write_identity(cfg: VolumeConfig, volume_uuid: str, catalog_id: str) -> None:
    if cfg.path is None:
        data = {"volume_uuid": volume_uuid, "catalog_id": catalog_id, "name": cfg.name}
        bucket_of(cfg).write_marker(data)
    else:
        write_identity(cfg.path, volume_uuid, catalog_id, cfg.name)


def _unmounted(cfg: VolumeConfig) -> bool:
    return cfg.path is not None and cfg.require_mountpoint and not os.path.ismount(cfg.path)


def check(cfg: VolumeConfig, known: VolumeRow | None, catalog_id: str) -> Volume:
    """Decide whether a configured volume may be used; reads the disk (or asks the object
    store), changes nothing."""
    bucket = bucket_of(cfg) if cfg.path is None else None

    def unavailable(reason: str) -> Volume:
        return Volume(cfg.name, cfg.path, cfg.role, False, reason, bucket=bucket)

    if _unmounted(cfg):
        return unavailable(f"{cfg.path} is not a mount point")
    try:
        identity = _identity(cfg)
    except ObjectStoreError as exc:
        return unavailable(f"{cfg.endpoint}: {exc.strerror}")
    if identity is None:
        if known is None:
            return unavailable(f"not initialised (ccvault volume init {cfg.name})")
        if bucket is not None:
            return unavailable(f"marker {bucket.where(IDENTITY_FILE)} is missing (wrong bucket?)")
        return unavailable(f"identity file {IDENTITY_FILE} is missing (disk not mounted?)")
    if identity.get("catalog_id") != catalog_id:
        return unavailable(f"belongs to another catalog ({identity.get('catalog_id')})")
    if known is not None and identity.get("volume_uuid") != known.uuid:
        return unavailable(
            f"wrong disk: volume id {identity.get('volume_uuid')}, catalog expects {known.uuid}"
        )
    if cfg.path is not None and not os.access(cfg.path, os.W_OK):
        return unavailable(f"{cfg.path} is not writable")
    return Volume(cfg.name, cfg.path, cfg.role, True, "", bucket=bucket)


def open_volumes(config: Config, writer: CatalogWriter, now_ms: int) -> list[Volume]:
    """Check every configured volume; initialise only those the catalog has never seen.

    A new directory volume is initialised when its path holds no identity (an s3 volume only by
    `volume init`); a volume that already carries
    this catalog's identity but is unknown (a restored catalog) is registered as it is.
    """
    with writer.reader() as conn:
        known = queries.volume_rows(conn)
    out = []
    for cfg in config.storage.volumes:
        row = known.get(cfg.name)
        if row is None and not _unmounted(cfg):
            try:
                identity = _identity(cfg)
            except ObjectStoreError:
                identity = {}  # unreachable: check() says so
            if identity is None and cfg.path is not None:
                new_uuid = str(uuid.uuid4())
                write_identity(cfg.path, new_uuid, writer.catalog_id, cfg.name)
                writer.volumes.register(cfg.name, new_uuid, now_ms)
            elif identity and identity.get("catalog_id") == writer.catalog_id:
                writer.volumes.register(cfg.name, str(identity.get("volume_uuid")), now_ms)
            with writer.reader() as conn:
                row = queries.volume_rows(conn).get(cfg.name)
        out.append(check(cfg, row, writer.catalog_id))
    return out


def init_volume(config: Config, writer: CatalogWriter, name: str, now_ms: int) -> str:
    """`volume init`: give a volume without an identity its identity, on purpose (an s3
    volume's bucket is created first when missing)."""
    with _answered(name):
        return _init_volume(_configured(config, name), writer, name, now_ms)


@contextlib.contextmanager
def _answered(name: str) -> Iterator[None]:
    """An object store that fails a request fails the command: exit 1 with its reason."""
    try:
        yield
    except ObjectStoreError as exc:
        raise CheckFailed(f"volume {name}", exc.strerror or str(exc)) from None


def _init_volume(cfg: VolumeConfig, writer: CatalogWriter, name: str, now_ms: int) -> str:
    with writer.reader() as conn:
        row = queries.volume_rows(conn).get(name)
    if cfg.path is None:
        _prepare_bucket(bucket_of(cfg), name)
    identity = _identity(cfg)
    if identity is not None:
        if row is not None and check(cfg, row, writer.catalog_id).available:
            return row.uuid
        raise Refused(
            f"volume {name}",
            f"{_where(cfg)} already has an identity "
            f"({identity.get('volume_uuid')}); use 'ccvault volume replace {name}'",
        )
    volume_uuid = row.uuid if row else str(uuid.uuid4())
    _write_identity(cfg, volume_uuid, writer.catalog_id)
    if row is None:
        writer.volumes.register(name, volume_uuid, now_ms)
    return volume_uuid


def replace_volume(
    config: Config, writer: CatalogWriter, name: str, now_ms: int, *, actor: str, force: bool
) -> int:
    """`volume replace`: a new disk takes the volume's place; what the old one held is missing
    (the caller then reconciles the volume, so footage on the new disk is found or adopted).

    A volume that is available is the disk the catalog expects, with its footage: replacing
    it would orphan all of it, so that takes `force`. Audited (`volume.replace`)."""
    with _answered(name):
        return _replace_volume(config, writer, name, now_ms, actor=actor, force=force)


def _replace_volume(
    config: Config, writer: CatalogWriter, name: str, now_ms: int, *, actor: str, force: bool
) -> int:
    cfg = _configured(config, name)
    new_uuid = str(uuid.uuid4())
    with writer.reader() as conn:
        row = queries.volume_rows(conn).get(name)
    state = check(cfg, row, writer.catalog_id)
    if row is not None and state.available and not force:
        raise Refused(
            f"volume {name}",
            f"{_where(cfg)} is available and is the disk the catalog expects; replacing it "
            "would mark all its footage missing (give --force to replace it anyway)",
        )
    _write_identity(cfg, new_uuid, writer.catalog_id)
    if row is None:
        writer.volumes.register(name, new_uuid, now_ms)
        return 0
    reason = state.reason or "available (forced)"
    return writer.volumes.replace(
        name, new_uuid, now_ms, actor, {"forced": force, "was": reason, "path": _where(cfg)}
    )


def _prepare_bucket(bucket: Bucket, name: str) -> None:
    """`volume init` of an s3 volume: the bucket exists (made, with Object Lock when
    configured, if missing), can lock when configured to, and holds nothing but ours."""
    made = bucket.ensure_bucket()
    if bucket.locking and not bucket.lock_enabled():
        raise Refused(
            f"volume {name}",
            f"bucket {bucket.name} has no Object Lock (S3 enables it only when a bucket is "
            "created): name a new bucket, or set object_lock = 'off'",
        )
    if not made and bucket.read_marker() is None and bucket.foreign_objects():
        raise Refused(
            f"volume {name}",
            f"{bucket.where()} holds objects that are not ccvault's: give an empty prefix",
        )
    log.info("volume.bucket", volume=name, bucket=bucket.name, created=made)


def _where(cfg: VolumeConfig) -> str:
    return bucket_of(cfg).where() if cfg.path is None else str(cfg.path)


def _configured(config: Config, name: str) -> VolumeConfig:
    cfg = next((v for v in config.storage.volumes if v.name == name), None)
    if cfg is None:
        raise NotFound(f"volume {name}", "not in the config")
    return cfg


def target_for_new_segments(volumes: list[Volume]) -> Volume | None:
    """The first available hot volume that takes footage; else an archive volume; else, as
    a last resort, a volume full of held footage (ingest goes on as long as it can)."""
    for accepting in (True, False):
        for role in ("hot", "archive"):
            for volume in volumes:
                if volume.path is None:
                    continue  # an s3 volume takes footage only by migration
                if volume.role == role and volume.available and volume.accepting == accepting:
                    return volume
    return None


@dataclass(frozen=True, slots=True)
class Blocked:
    """A volume disk pressure cannot bring back over its reserve: new footage goes elsewhere."""

    need: int  # bytes it stays under its reserve after every deletion pressure may make
    foreign: int  # bytes on its filesystem that are not catalogued footage (other programs)
    held: int  # held or export-pinned footage left on it
    floor: int  # each camera's newest footage left on it (pressure_floor_hours)


@dataclass(frozen=True, slots=True)
class Spools:
    """Where recorders write now (`record`), and every spool ingest must drain (`drain`, the
    first of them being `record`)."""

    record: Path
    drain: list[Path]


def spool_dirs(config: Config, volumes: list[Volume]) -> Spools:
    """Default: `.spool` on the first available volume (hot first) — never on an unavailable
    one, whose directory may be an empty mount point on the root filesystem. With no volume at
    all, recording goes on into a spool beside the catalog until a volume returns. Spools left
    on other volumes by earlier starts are drained too.
    """
    if config.storage.spool is not None:
        return Spools(config.storage.spool, [config.storage.spool])
    target = target_for_new_segments(volumes)
    primary = (target.path if target else config.state_dir) / SPOOL_DIR
    others = [root / SPOOL_DIR for root in local_roots(volumes).values()]
    fallback = config.state_dir / SPOOL_DIR
    return Spools(
        primary, [primary, *(p for p in [*others, fallback] if p != primary and p.is_dir())]
    )


def usage(volume: Volume) -> tuple[int, int] | None:
    """(total, free) bytes, free as an unprivileged writer sees it; None when unreadable
    (or an s3 volume: a bucket has no size, only its max_bytes quota)."""
    if volume.path is None:
        return None
    try:
        du = psutil.disk_usage(str(volume.path))
    except OSError:
        return None
    return du.total, du.free


class VolumeSet:
    """The configured volumes as last checked, and which of them are blocked (full of footage
    nothing may delete, so new segments go elsewhere). The one owner of that state: the store,
    retention, exports and the API read it through `current` and `writable`."""

    def __init__(
        self,
        config: Config,
        writer: CatalogWriter,
        now_ms: Callable[[], int],
        on_return: Callable[[list[Volume]], None] = lambda _v: None,
    ) -> None:
        self.config, self.writer, self.now_ms = config, writer, now_ms
        self.on_return = on_return  # a volume came back: intents that waited for it
        self._volumes: list[Volume] = []
        self.blocked: dict[str, Blocked] = {}  # volumes pressure cannot free enough

    def current(self) -> list[Volume]:
        return self._volumes

    def writable(self) -> list[Volume]:
        return [replace(v, accepting=v.name not in self.blocked) for v in self._volumes]

    def refresh(self) -> list[Volume]:
        """Check every volume again (identity, mount, writability); log what changed."""
        before = {v.name: v.available for v in self._volumes}
        self._volumes = open_volumes(self.config, self.writer, self.now_ms())
        returned = False
        for volume in self._volumes:
            if before.get(volume.name) != volume.available:
                level = log.info if volume.available else log.error
                level(
                    "volume.state",
                    volume=volume.name,
                    state=volume.state,
                    reason=volume.reason,
                    path=volume.where,
                )
                returned |= volume.available and volume.name in before
        if returned:
            self.on_return(self._volumes)
        return self._volumes

    def set_blocked(self, blocked: dict[str, Blocked]) -> bool:
        """Take what the latest pressure check found; True when the set of blocked volumes
        changed (new footage may have to go elsewhere)."""
        for name, why in blocked.items():
            if name not in self.blocked:
                log.error(
                    "volume.blocked",
                    volume=name,
                    need_bytes=why.need,
                    foreign_bytes=why.foreign,
                    held_bytes=why.held,
                    floor_bytes=why.floor,
                )
                if why.held:
                    log.error("held_footage_blocking", volume=name, need_bytes=why.need)
        for name in self.blocked.keys() - blocked.keys():
            log.info("volume.accepting", volume=name)
        changed = blocked.keys() != self.blocked.keys()
        self.blocked = dict(blocked)
        return changed

    def apply(self, config: Config) -> None:
        self.config = config
        self.refresh()
