"""S3 Object Lock for footage on s3 volumes with `object_lock` set.

- A segment archived there is locked until its minimum retention ends (its end + the camera's
  min_days): not even an administrator of the bucket can shorten what policy promises.
- Held footage there carries a legal hold while any hold covers it (`holds.add`/`release`);
  a legal hold has no date, like an open-ended hold.
- Purge asks the bucket before deleting: a locked object is left, with why it waits
  (`purge.waiting`), never tried.
The catalog's holds stay the truth for ccvault; the lock is the store's own guarantee of it.
A legal hold that could not be set (the store unreachable) is logged
(`s3.legal_hold_failed`) and set again at the next hold change or migration.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import structlog

from ccvault.catalog import queries
from ccvault.catalog.rows import Intent
from ccvault.catalog.writer import CatalogWriter
from ccvault.catalog.writes.intents import protected_now
from ccvault.config.model import Config
from ccvault.retention.planner import Decision
from ccvault.retention.roots import Roots
from ccvault.storage.objects import Bucket, ObjectStoreError, bucket_of
from ccvault.timefmt import utc_text

log = structlog.get_logger("ccvault.retention.locks")

DAY_MS = 86_400_000
LockUntil = Callable[[str, int], int]  # (camera, segment end ms) → retain-until ms


def lock_dates(config: Config) -> LockUntil:
    """Each segment's retain-until: the end of its camera's minimum retention."""

    def until(camera: str, end_ms: int) -> int:
        return end_ms + round(config.retention_for(camera).min_days * DAY_MS)

    return until


def locking_buckets(config: Config) -> dict[str, Bucket]:
    """Name → bucket of every s3 volume with Object Lock."""
    return {
        v.name: bucket_of(v) for v in config.storage.volumes if v.is_s3 and v.object_lock != "off"
    }


def sync_legal_holds(
    conn: sqlite3.Connection, config: Config, from_ms: int, to_ms: int, now_ms: int
) -> int:
    """Set each object of a locking bucket in from..to to what the catalog's holds say now
    (legal hold on while held or pinned, off when nothing holds it any more); how many were
    set. Called once a hold is added or released; each object may fail alone (logged)."""
    buckets = locking_buckets(config)
    if not buckets:
        return 0
    marks = ",".join("?" * len(buckets))
    rows = conn.execute(
        "SELECT s.id, c.name AS camera, v.name AS volume, s.path, s.start_ms, s.end_ms"
        " FROM segments s JOIN cameras c ON c.id = s.camera_id"
        f" JOIN volumes v ON v.id = s.volume_id WHERE v.name IN ({marks})"
        " AND s.start_ms < ? AND s.end_ms > ? AND s.state = 'ok'",
        [*buckets, to_ms, from_ms],
    ).fetchall()
    changed = 0
    for row in rows:
        held = protected_now(conn, row["camera"], row["start_ms"], row["end_ms"], now_ms)
        changed += set_legal_hold(buckets[row["volume"]], row["path"], held, row["id"])
    return changed


def set_legal_hold(bucket: Bucket, rel: str, on: bool, segment_id: int) -> bool:
    try:
        bucket.legal_hold(rel, on)
    except ObjectStoreError as exc:
        log.error("s3.legal_hold_failed", segment_id=segment_id, on=on, error=str(exc))
        return False
    log.info("s3.legal_hold", segment_id=segment_id, on=on, object=bucket.where(rel))
    return True


def locking(paths: Roots, volume: str | None) -> bool:
    bucket = paths.buckets.get(volume or "")
    return bucket is not None and bucket.locking


def still_locked(
    writer: CatalogWriter, paths: Roots, decisions: list[Decision], now_ms: int
) -> set[int]:
    """Segments whose object Object Lock keeps past now: never tried, and each says why it
    waits (`purge.waiting`). Asked of the bucket, not computed: the lock is the store's."""
    ids = [d.segment.id for d in decisions if locking(paths, d.segment.volume)]
    if not ids:
        return set()
    with writer.reader() as conn:
        segs = queries.segments_by_ids(conn, ids)
    out = set()
    for seg in segs:
        bucket = paths.buckets[seg.volume]
        try:
            until = bucket.retained_until(seg.path)
        except ObjectStoreError as exc:
            until, why = None, str(exc)
            out.add(seg.id)  # not known: not tried either
            log.warning("purge.waiting", segment_id=seg.id, volume=seg.volume, reason=why)
            continue
        if until is not None and until > now_ms:
            out.add(seg.id)
            log.info(
                "purge.waiting",
                segment_id=seg.id,
                volume=seg.volume,
                until=utc_text(until),
                reason=f"S3 Object Lock ({bucket.cfg.object_lock}) until {utc_text(until)}",
            )
    return out


def lock_copies(
    writer: CatalogWriter,
    paths: Roots,
    done: list[Intent],
    lock_until: LockUntil | None,
    now_ms: int,
) -> set[tuple[str, str]]:
    """Object Lock each copy just switched to a locking bucket: retained until its minimum
    retention ends, legal hold while held. The sources of copies left unlocked (returned)
    stay, with their intents: recovery locks them, then removes the source."""
    todo = [i for i in done if locking(paths, i.dst_volume)]
    if not todo:
        return set()
    failed = set()
    with writer.reader() as conn:
        segs = {s.id: s for s in queries.segments_by_ids(conn, [i.segment_id for i in todo])}
        for it in todo:
            seg, bucket = segs.get(it.segment_id), paths.buckets[it.dst_volume or ""]
            try:
                if seg is None or lock_until is None:
                    raise ObjectStoreError(bucket.where(it.dst_path or ""), "no retention date")
                bucket.retain(it.dst_path or "", lock_until(seg.camera, seg.end_ms))
                if protected_now(conn, seg.camera, seg.start_ms, seg.end_ms, now_ms):
                    bucket.legal_hold(it.dst_path or "", True)
            except ObjectStoreError as exc:
                log.error("migrate.lock_failed", segment_id=it.segment_id, error=str(exc))
                failed.add((it.src_volume, it.src_path))
    return failed
