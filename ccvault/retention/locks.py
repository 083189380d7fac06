"""S3 Object Lock for footage on s3 volumes with `object_lock` set.

- A segment archived there is locked until its minimum retention ends (its end + the camera's
  min_days): not even an administrator of the bucket can shorten what policy promises.
- Held footage there carries a legal hold while any hold covers it (`holds.add`/`release`);
  a legal hold has no date, like an open-ended hold.
- The catalog records what was set on each object (`object_locks`: mode, retain-until, legal
  hold), so the pure planner turns a deletion the lock forbids into a wait for it
  (`planner.unless_locked`): a dry run and `explain` show it, and the executor never tries it
  (`purge.waiting`).
- Safety net: before deleting, the executor still asks the store; an object it finds locked
  is left (`purge.waiting`), and what the store said is recorded for the next plan.
- A legal hold change is pending in the catalog before it is sent; one the store did not take
  (the endpoint down) is retried by the daemon with backoff (`retry_legal_holds`) until it
  is on the object.
The catalog's holds stay the truth for ccvault; the lock is the store's own guarantee of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import structlog

from ccvault.catalog import queries
from ccvault.catalog.rows import Intent
from ccvault.catalog.writer import CatalogWriter
from ccvault.catalog.writes.intents import protected_now
from ccvault.catalog.writes.locks import ObjectLock
from ccvault.config.model import Config
from ccvault.retention.planner import Decision
from ccvault.retention.roots import Roots
from ccvault.storage.objects import Bucket, ObjectStoreError, bucket_of
from ccvault.timefmt import utc_text

log = structlog.get_logger("ccvault.retention.locks")

DAY_MS = 86_400_000
LockUntil = Callable[[str, int], int]  # (camera, segment end ms) → retain-until ms
# A legal hold the store did not take is tried again after 5 s, then twice as long each time
# (at most 5 min): soon after an endpoint returns, without hammering one that is away.
HOLD_RETRY_FIRST_MS = 5_000
HOLD_RETRY_MAX_MS = 300_000


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


def hold_retry_at(attempts: int, now_ms: int) -> int:
    """When a legal hold change that failed `attempts` times is tried again."""
    return now_ms + min(HOLD_RETRY_MAX_MS, HOLD_RETRY_FIRST_MS * 2 ** max(0, attempts - 1))


def sync_legal_holds(
    writer: CatalogWriter, config: Config, from_ms: int, to_ms: int, now_ms: int
) -> int:
    """Set each object of a locking bucket in from..to to what the catalog's holds say now
    (legal hold on while held or pinned, off when nothing holds it any more); how many
    changes the store took. Called once a hold is added or released. Each change is pending
    in the catalog first, then sent: one the store does not take is retried by the daemon."""
    buckets = locking_buckets(config)
    with writer.reader() as conn:
        rows = _on_locking_buckets(
            conn,
            buckets,
            "s.start_ms < ? AND s.end_ms > ? AND s.state = 'ok'",
            [to_ms, from_ms],
        )
        wanted = _held_now(conn, rows, now_ms)
    if not rows:
        return 0
    # An object archived before the catalog recorded locks: its lock as policy set it.
    until = lock_dates(config)
    writer.locks.record(
        ObjectLock(
            r["id"], buckets[r["volume"]].cfg.object_lock, until(r["camera"], r["end_ms"]), False
        )
        for r in rows
        if r["known"] is None
    )
    writer.locks.want_holds(wanted, now_ms)  # each due now
    return retry_legal_holds(writer, config, now_ms)


def retry_legal_holds(writer: CatalogWriter, config: Config, now_ms: int) -> int:
    """The daemon's job: send again each legal hold change whose retry is due; how many the
    store took. A failure waits longer each time (`hold_retry_at`); while the endpoint is
    away its volume is unavailable (the `volume_unavailable` alert)."""
    buckets = locking_buckets(config)
    with writer.reader() as conn:
        rows = _on_locking_buckets(
            conn,
            buckets,
            "k.hold_wanted IS NOT NULL AND k.next_try_ms <= ? ORDER BY k.next_try_ms",
            [now_ms],
        )
    return sum(
        set_legal_hold(
            writer,
            buckets[r["volume"]],
            r["path"],
            bool(r["hold_wanted"]),
            r["id"],
            r["attempts"],
            now_ms,
        )
        for r in rows
    )


def release_lapsed_legal_holds(writer: CatalogWriter, config: Config, now_ms: int) -> int:
    """Legal holds no hold or export pin covers any more come off their objects; how many the
    store took. A hold released by someone is synced at once (`sync_legal_holds`), but one
    that ends at its own date, or a pin that expires, is released by no one: without this its
    objects would stay undeletable past the privacy maximum. Each routine pass looks first."""
    buckets = locking_buckets(config)
    with writer.reader() as conn:
        rows = _on_locking_buckets(conn, buckets, "k.legal_hold = 1 AND k.hold_wanted IS NULL", [])
        lapsed = {i: False for i, held in _held_now(conn, rows, now_ms).items() if not held}
    if not lapsed:
        return 0
    writer.locks.want_holds(lapsed, now_ms)
    return retry_legal_holds(writer, config, now_ms)


def _held_now(conn: sqlite3.Connection, rows: list[sqlite3.Row], now_ms: int) -> dict[int, bool]:
    """Each segment's legal hold as the catalog's holds and export pins say it must be now."""
    return {
        r["id"]: protected_now(conn, r["camera"], r["start_ms"], r["end_ms"], now_ms) for r in rows
    }


def _on_locking_buckets(
    conn: sqlite3.Connection, buckets: dict[str, Bucket], where: str, params: list
) -> list[sqlite3.Row]:
    """Segments on locking buckets matching `where`, with their object's lock row if any."""
    if not buckets:
        return []
    return conn.execute(
        "SELECT s.id, c.name AS camera, v.name AS volume, s.path, s.start_ms, s.end_ms,"
        " k.segment_id AS known, k.hold_wanted, k.attempts FROM segments s"
        " JOIN cameras c ON c.id = s.camera_id JOIN volumes v ON v.id = s.volume_id"
        " LEFT JOIN object_locks k ON k.segment_id = s.id"
        f" WHERE v.name IN ({','.join('?' * len(buckets))}) AND {where}",
        [*buckets, *params],
    ).fetchall()


def set_legal_hold(
    writer: CatalogWriter,
    bucket: Bucket,
    rel: str,
    on: bool,
    segment_id: int,
    attempts: int,
    now_ms: int,
) -> bool:
    """One pending legal hold change sent; recorded as set, or as failed with its retry."""
    try:
        bucket.legal_hold(rel, on)
    except ObjectStoreError as exc:
        retry = hold_retry_at(attempts + 1, now_ms)
        writer.locks.hold_failed(segment_id, retry)
        log.error(
            "s3.legal_hold_failed",
            segment_id=segment_id,
            on=on,
            error=str(exc),
            attempts=attempts + 1,
            retry_at=utc_text(retry),
        )
        return False
    writer.locks.hold_set(segment_id, on)
    log.info("s3.legal_hold", segment_id=segment_id, on=on, object=bucket.where(rel))
    return True


def locking(paths: Roots, volume: str | None) -> bool:
    bucket = paths.buckets.get(volume or "")
    return bucket is not None and bucket.locking


def waiting(decisions: list[Decision]) -> None:
    """Each deletion the plan found locked says why it waits (`purge.waiting`)."""
    for d in decisions:
        c = d.segment
        if d.waits_for == "legal_hold":
            why = "S3 Object Lock legal hold (its release not on the object yet)"
        else:
            why = f"S3 Object Lock ({c.lock_mode}) until {utc_text(d.until_ms or 0)}"
        log.info(
            "purge.waiting",
            segment_id=c.id,
            volume=c.volume,
            rule=d.rule,
            until=utc_text(d.until_ms) if d.until_ms else None,
            reason=why,
        )


def still_locked(
    writer: CatalogWriter, paths: Roots, decisions: list[Decision], now_ms: int
) -> set[int]:
    """The safety net under the plan: segments whose object the store still keeps locked
    past now (a lock the catalog did not know: archived before it recorded locks, or changed
    on the store). Never tried; each says why it waits, and what the store said is recorded
    so the next plan knows it."""
    ids = [d.segment.id for d in decisions if locking(paths, d.segment.volume)]
    if not ids:
        return set()
    with writer.reader() as conn:
        segs = queries.segments_by_ids(conn, ids)
    out, learned = set(), []
    for seg in segs:
        bucket = paths.buckets[seg.volume]
        try:
            state = bucket.lock_state(seg.path)
        except ObjectStoreError as exc:
            out.add(seg.id)  # not known: not tried either
            log.warning("purge.waiting", segment_id=seg.id, volume=seg.volume, reason=str(exc))
            continue
        dated = state.until_ms is not None and state.until_ms > now_ms
        if not (dated or state.legal_hold):
            continue
        out.add(seg.id)
        if state.until_ms is not None and state.mode:
            learned.append(ObjectLock(seg.id, state.mode, state.until_ms, state.legal_hold))
        why = (
            f"S3 Object Lock ({state.mode}) until {utc_text(state.until_ms or 0)}"
            if dated
            else "S3 Object Lock legal hold"
        )
        log.info(
            "purge.waiting",
            segment_id=seg.id,
            volume=seg.volume,
            until=utc_text(state.until_ms) if dated and state.until_ms else None,
            reason=why,
        )
    writer.locks.record(learned)
    return out


def lock_copies(
    writer: CatalogWriter,
    paths: Roots,
    done: list[Intent],
    lock_until: LockUntil | None,
    now_ms: int,
) -> set[tuple[str, str]]:
    """Object Lock each copy just switched to a locking bucket: retained until its minimum
    retention ends, legal hold while held; each lock set is recorded in the catalog. The
    sources of copies left unlocked (returned) stay, with their intents: recovery locks them,
    then removes the source."""
    todo = [i for i in done if locking(paths, i.dst_volume)]
    if not todo:
        return set()
    failed, locked = set(), []
    with writer.reader() as conn:
        segs = {s.id: s for s in queries.segments_by_ids(conn, [i.segment_id for i in todo])}
        for it in todo:
            seg, bucket = segs.get(it.segment_id), paths.buckets[it.dst_volume or ""]
            try:
                if seg is None or lock_until is None:
                    raise ObjectStoreError(bucket.where(it.dst_path or ""), "no retention date")
                until = lock_until(seg.camera, seg.end_ms)
                bucket.retain(it.dst_path or "", until)
                held = protected_now(conn, seg.camera, seg.start_ms, seg.end_ms, now_ms)
                if held:
                    bucket.legal_hold(it.dst_path or "", True)
                locked.append(ObjectLock(seg.id, bucket.cfg.object_lock, until, held))
            except ObjectStoreError as exc:
                log.error("migrate.lock_failed", segment_id=it.segment_id, error=str(exc))
                failed.add((it.src_volume, it.src_path))
    writer.locks.record(locked)
    return failed
