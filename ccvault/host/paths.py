"""Where a path really is, so that one directory reached two ways is seen as one.

A symlink, a `..` or a bind mount can make `/mnt/b` the very directory `/srv/a`; a check that
compares the strings typed in a config is fooled by all three. `locate` finds a path as the
kernel reaches it — symlinks and `..` resolved (what does not exist yet is taken lexically
below its nearest existing ancestor: it cannot be a link), its place inside its filesystem
(from /proc/self/mountinfo: a bind mount's root is the directory it shows), and the
(st_dev, st_ino) of it and every existing directory above it. `inside` says whether one
location lies in another by any of these routes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MOUNTINFO = Path("/proc/self/mountinfo")

Node = tuple[int, int]  # (st_dev, st_ino)


@dataclass(frozen=True, slots=True)
class Mount:
    device: str  # major:minor
    root: PurePosixPath  # the directory of its filesystem this mount shows
    point: Path  # where it is mounted


@dataclass(frozen=True, slots=True)
class Location:
    path: Path  # as configured
    resolved: Path  # symlinks and `..` resolved
    in_filesystem: tuple[str, PurePosixPath] | None  # (device, path inside that filesystem)
    node: Node | None  # the path itself, when it exists
    chain: frozenset[Node]  # the path (when it exists) and every existing directory above it
    filesystem: int | None  # st_dev of the path or its nearest existing ancestor


def mounts() -> list[Mount]:
    """The mount table as this process sees it; empty when it cannot be read."""
    try:
        lines = MOUNTINFO.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 5:
            out.append(
                Mount(fields[2], PurePosixPath(_unescape(fields[3])), Path(_unescape(fields[4])))
            )
    return out


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def resolve(path: Path) -> Path:
    """Symlinks and `..` resolved as far as the path exists, the rest lexically."""
    try:
        return Path(os.path.realpath(path))
    except (OSError, RuntimeError):  # a symlink loop: the lexical path is all there is
        return Path(os.path.abspath(path))


def locate(path: Path, table: list[Mount] | None = None) -> Location:
    resolved = resolve(path)
    table = mounts() if table is None else table
    chain: set[Node] = set()
    node = filesystem = None
    for i, step in enumerate((resolved, *resolved.parents)):
        try:
            st = os.stat(step)
        except OSError:
            continue
        chain.add((st.st_dev, st.st_ino))
        if filesystem is None:
            filesystem = st.st_dev
        if i == 0:
            node = (st.st_dev, st.st_ino)
    return Location(
        path, resolved, _in_filesystem(resolved, table), node, frozenset(chain), filesystem
    )


def _in_filesystem(resolved: Path, table: list[Mount]) -> tuple[str, PurePosixPath] | None:
    """(device, path inside it) by the mount with the longest mount point above the path
    (the last one mounted there, when several are stacked)."""
    best: Mount | None = None
    for mount in table:
        if resolved.is_relative_to(mount.point) and (
            best is None or len(mount.point.parts) >= len(best.point.parts)
        ):
            best = mount
    if best is None:
        return None
    return best.device, best.root / resolved.relative_to(best.point)


def inside(inner: Location, outer: Location) -> bool:
    """inner is outer or lies below it: by its resolved path, by its path inside a shared
    filesystem (bind mounts), or because outer's directory is on inner's way up."""
    if inner.resolved.is_relative_to(outer.resolved):
        return True
    if inner.in_filesystem and outer.in_filesystem:
        (dev_in, path_in), (dev_out, path_out) = inner.in_filesystem, outer.in_filesystem
        if dev_in == dev_out and path_in.is_relative_to(path_out):
            return True
    return outer.node is not None and outer.node in inner.chain
