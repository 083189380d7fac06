"""Where the executor's copies live: directory volumes (files) and s3 volumes (objects).

One place decides how a copy is removed or made on each kind of volume, so the executor's
intent-first steps (executor.py) are the same for a disk and for a bucket.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ccvault.host.durable import fsync_dir, make_dirs
from ccvault.storage.media import copy_hashed
from ccvault.storage.objects import Bucket
from ccvault.storage.volumes import Volume, buckets, local_roots


class CopyMismatch(Exception):
    """A copy that does not prove to be the catalogued footage is never switched to."""


@dataclass(frozen=True, slots=True)
class Roots:
    """The available volumes: name → directory, name → bucket."""

    local: dict[str, Path]
    buckets: dict[str, Bucket]

    def __contains__(self, name: object) -> bool:
        return name in self.local or name in self.buckets

    def remove(self, items: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Remove each (volume, relative path): files unlinked (dirs fsynced), objects deleted
        with every version in DeleteObjects batches. Gone already is fine (replays are
        idempotent). Returns what a bucket refused to delete (a locked object) with why."""
        _unlink_all([self.local[v] / rel for v, rel in items if v in self.local])
        per_bucket: dict[str, list[str]] = defaultdict(list)
        for volume, rel in items:
            if volume in self.buckets:
                per_bucket[volume].append(rel)
        refused = {}
        for volume, rels in per_bucket.items():
            for rel, code in self.buckets[volume].remove(rels).items():
                refused[(volume, rel)] = code
        return refused

    def free_name(self, volume: str, rel: str, tag: str) -> str:
        """A name for a new copy that nothing holds (a copy never replaces anything)."""
        stem = rel.removesuffix(".mp4")
        bucket = self.buckets.get(volume)
        for attempt in range(100):
            candidate = f"{stem}{tag}{f'-{attempt}' if attempt else ''}.mp4"
            taken = (
                bucket.exists(candidate)
                if bucket is not None
                else (self.local[volume] / candidate).exists()
            )
            if not taken:
                return candidate
        raise RuntimeError(f"no free name for a copy of {rel}")

    def copy_verified(self, src: Path, volume: str, rel: str, sha256: str) -> int:
        """Copy src to volume:rel and prove the copy is the catalogued footage (its bytes
        read back hash to sha256); its size. A file copy is exclusive-create and fsynced; an
        object is read back from the server, not trusted from the upload."""
        bucket = self.buckets.get(volume)
        if bucket is None:
            dst = self.local[volume] / rel
            make_dirs(dst.parent)
            digest = copy_hashed(src, dst)
            fsync_dir(dst.parent)
            if digest != sha256:
                raise CopyMismatch(f"copy of {src} to {dst} does not match the catalogued hash")
            return dst.stat().st_size
        sent = bucket.upload(src, rel)
        if sent.sha256 != sha256:
            raise CopyMismatch(f"{src} no longer matches its catalogued hash; not archived")
        digest, size = bucket.sha256(rel, sent.version)
        if digest != sha256 or size != sent.bytes:
            raise CopyMismatch(f"{bucket.where(rel)} read back does not match the catalogued hash")
        return size


T = TypeVar("T")
R = TypeVar("R")
ARCHIVE_WORKERS = 4  # uploads at once to a bucket: each part and read-back waits on the network


def run_copies(copy: Callable[[T], R], items: list[T], to_bucket: bool) -> list[tuple[T, R]]:
    """copy over items, in order: in ARCHIVE_WORKERS threads when they go to a bucket (one
    upload at a time leaves the link and the server idle between requests), else one after
    another (a disk copy is bound by the disks). `max_mbit` is kept by the bucket's pacer,
    which its uploads share."""
    if not to_bucket or len(items) < 2:
        return [(item, copy(item)) for item in items]
    with ThreadPoolExecutor(ARCHIVE_WORKERS, thread_name_prefix="archive") as pool:
        return list(zip(items, pool.map(copy, items), strict=True))


def roots_of(volumes: list[Volume]) -> Roots:
    return Roots(local_roots(volumes), buckets(volumes))


def _unlink_all(files: list[Path]) -> None:
    """Unlink (a file already gone is fine: replays are idempotent), then fsync each dir."""
    dirs = set()
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        dirs.add(path.parent)
    for d in dirs:
        if d.is_dir():
            fsync_dir(d)
