"""Where ccvault keeps things, and the rule that none of them lies inside another's area.

Each area has its own keeper: reconcile adopts or sets aside what it finds on a volume, the
spool's leftovers expire with the privacy ceiling, bundles in [export] dir expire after
keep_days, and a bundle verifies only while it holds exactly its listed files. One area inside
another hands its files to the other's keeper — held footage adopted by another volume, the
live catalog quarantined, evidence expired — so a config where they overlap is refused at
load, naming both keys, and so is a backup or export directory chosen later inside one.
Paths are compared where they really are (`host.paths`: symlinks, `..`, bind mounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ccvault.config.model import Config
from ccvault.host.paths import Location, inside, locate, mounts

# What makes a directory an export bundle (evidence.bundle writes both, verify reads both).
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
SPOOL_DIR = ".spool"


class Role(Enum):
    VOLUME = "volume"  # footage: reconcile owns everything below it
    SPOOL = "spool"  # open segments: drained, and its leftovers expire
    EXPORTS = "exports"  # [export] dir: bundles expire after keep_days
    HANDOVER = "handover"  # [export] allowed_dirs: bundles kept, someone else's storage
    FILE = "file"  # the catalog, the audit log, the signing key
    BACKUP = "backup"  # a `ccvault backup` directory
    BUNDLE = "bundle"  # a new export bundle


# For each role, the roles that must not lie inside it (or be it).
_ALL = frozenset(Role)
FORBIDDEN_INSIDE: dict[Role, frozenset[Role]] = {
    Role.VOLUME: _ALL,
    Role.SPOOL: _ALL,
    Role.EXPORTS: frozenset({Role.VOLUME, Role.SPOOL, Role.HANDOVER}),
    Role.HANDOVER: frozenset({Role.VOLUME, Role.SPOOL, Role.EXPORTS}),
    Role.FILE: _ALL,
    Role.BACKUP: frozenset(),
    Role.BUNDLE: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Place:
    key: str  # the config key an operator changes to move it
    path: Path
    role: Role


def places(config: Config) -> list[Place]:
    """Every place the config names or implies, the catalog before what defaults beside it."""
    beside = "unset: {} beside storage.catalog"
    storage = config.storage
    out = [
        Place(f"storage.volumes[{i}].path", v.path, Role.VOLUME)
        for i, v in enumerate(storage.volumes)
        if v.path is not None
    ]
    if isinstance(storage.catalog, Path):
        out.append(Place("storage.catalog", storage.catalog, Role.FILE))
    if storage.state_dir is not None:
        beside = "unset: {} in storage.state_dir"
    if storage.spool is not None:
        out.append(Place("storage.spool", storage.spool, Role.SPOOL))
    else:  # where recording goes while no volume is available
        spool = config.state_dir / SPOOL_DIR
        out.append(Place(f"storage.spool ({beside.format(SPOOL_DIR)})", spool, Role.SPOOL))
    audit = "audit.path" if config.audit.path else f"audit.path ({beside.format('audit.jsonl')})"
    out.append(Place(audit, config.audit_path, Role.FILE))
    key_name = config.signing_key_path.name
    out.append(
        Place(
            f"signing key ({key_name} beside storage.catalog)", config.signing_key_path, Role.FILE
        )
    )
    exports = "export.dir" if config.export.dir else f"export.dir ({beside.format('exports/')})"
    out.append(Place(exports, config.export_dir, Role.EXPORTS))
    out += [
        Place(f"export.allowed_dirs[{i}]", d, Role.HANDOVER)
        for i, d in enumerate(config.export.allowed_dirs)
    ]
    return out


def overlap(config: Config) -> str | None:
    """The first two places of the config that overlap, as `key: inside other key (path)`."""
    table = mounts()
    found = [(p, locate(p.path, table)) for p in places(config)]
    for i, (place, where) in enumerate(found):
        problem = _in_bundle(place, where)
        for other, there in found[:i]:
            problem = problem or _clash(place, where, other, there)
        if problem:
            return problem
    return None


def refusal(config: Config, place: Place) -> str | None:
    """Why a directory chosen at run time (a backup, a bundle) may not go where asked."""
    table = mounts()
    where = locate(place.path, table)
    problem = _in_bundle(place, where)
    for other in places(config):
        problem = problem or _clash(place, where, other, locate(other.path, table))
    return problem


def _clash(a: Place, la: Location, b: Place, lb: Location) -> str | None:
    a_in_b = inside(la, lb) and a.role in FORBIDDEN_INSIDE[b.role] and not _own_spool(a, la, b, lb)
    b_in_a = inside(lb, la) and b.role in FORBIDDEN_INSIDE[a.role] and not _own_spool(b, lb, a, la)
    if a_in_b and b_in_a:
        return f"{a.key}: the same place as {b.key} ({_shown(b, lb)})"
    if a_in_b:
        return f"{a.key}: inside {b.key} ({_shown(b, lb)})"
    if b_in_a:
        return f"{b.key}: inside {a.key} ({_shown(a, la)})"
    return None


def _own_spool(spool: Place, where: Location, volume: Place, there: Location) -> bool:
    """A volume's own `.spool` is where the default spool goes, and reconcile never looks."""
    return (
        spool.role is Role.SPOOL
        and volume.role is Role.VOLUME
        and where.resolved == there.resolved / SPOOL_DIR
    )


def _shown(place: Place, where: Location) -> str:
    return str(place.path) if where.resolved == place.path else f"{place.path} = {where.resolved}"


def _in_bundle(place: Place, where: Location) -> str | None:
    """Anything put inside a bundle adds a file its manifest does not list: it stops verifying."""
    for step in (where.resolved, *where.resolved.parents):
        if (step / MANIFEST).is_file() and (step / SIGNATURE).is_file():
            return f"{place.key}: inside the export bundle {step}"
    return None


def shared_filesystems(config: Config) -> list[str]:
    """Volumes on one filesystem share its free space: allowed, but said, since each can
    take that space and not both (status, headroom and the forecast count it once)."""
    found = []
    for i, volume in enumerate(config.storage.volumes):
        if volume.path is None:
            continue  # an s3 bucket: no filesystem here
        if volume.require_mountpoint and not volume.path.is_mount():
            continue  # its filesystem is not there yet
        found.append((i, volume, locate(volume.path, [])))
    out = []
    for n, (i, _volume, where) in enumerate(found):
        for j, other, there in found[:n]:
            if where.filesystem is not None and where.filesystem == there.filesystem:
                out.append(
                    f"storage.volumes[{i}].path: on the same filesystem as "
                    f"storage.volumes[{j}].path ({other.path}); its free space is counted once"
                )
                break
    return out
