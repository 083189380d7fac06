"""Carrying out retention decisions, crash-safely: every file operation is an intent first.

Delete:  intent + row removed + audit (one transaction) → unlink → fsync dir → clear intent.
Migrate: intent → copy (exclusive create, fsync, re-read hash; to an s3 volume: upload, then
         read the object back and hash it) → verify against the row → switch the row + audit
         → (s3 with Object Lock: lock the object) → unlink the source → fsync dir → clear intent.
Thin:    intent → keyframes-only copy beside the original → hash → switch the row (refused if
         held by now) + audit with the original's hash → unlink the original → clear intent.

`recover()` runs at start-up (and before `ccvault purge` or `reconcile` without a daemon),
before reconcile may adopt anything: an intent marked switched (in the transaction that
switched the row) is finished — the source goes — any other is rolled back — the copy goes —
and a delete is finished. So a crash at any step leaves exactly one valid, catalogued copy, and an
expired file never comes back as "unknown footage".

`checkpoint(step)` is called at every step boundary; the daemon passes a no-op, the fault tests
a function that kills the process there.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from ccvault.catalog import queries
from ccvault.catalog.nodes import own_volume_names
from ccvault.catalog.rows import Intent, PlannedMove, Switch
from ccvault.catalog.writer import CatalogWriter
from ccvault.host.durable import fsync_dir, make_dirs
from ccvault.host.progress import SILENT, Progress, Unit
from ccvault.retention.locks import LockUntil, lock_copies, locking, still_locked, waiting
from ccvault.retention.planner import DELETE, MIGRATE, THIN, WAIT, Decision
from ccvault.retention.roots import CopyMismatch, Roots, _unlink_all, roots_of, run_copies
from ccvault.storage.media import sha256_file
from ccvault.storage.objects import ObjectStoreError
from ccvault.storage.thinning import ThinError, keyframes_only, work_path
from ccvault.storage.volumes import Volume, local_roots

log = structlog.get_logger("ccvault.retention")

Checkpoint = Callable[[str], None]


class PurgeCounters(Protocol):
    """What the executor reports once files are gone (the daemon's Prometheus metrics)."""

    def purged(self, rule: str, nbytes: int) -> None: ...


# Deletes are cheap (an unlink each); copies and keyframe rewrites are not, so they go in
# small chunks that let a stopping daemon or a pressure check in between.
DELETE_CHUNK = 500
MOVE_CHUNK = 20
# The order a batch is carried out in: deletes first (they free space at once), then
# migrations, then thinning; within each, the batch's own order (oldest first).
RUN_ORDER = ((DELETE, DELETE_CHUNK), (MIGRATE, MOVE_CHUNK), (THIN, MOVE_CHUNK))


def run_order(decisions: list[Decision]) -> list[Decision]:
    """A batch's actions in the order `Executor.apply` carries them out (`purge --dry-run`
    lists them so), then the deletions that wait for an object lock; keeps are no action."""
    order = (*(action for action, _ in RUN_ORDER), WAIT)
    return [d for action in order for d in decisions if d.action == action]


def no_checkpoint(_step: str) -> None:
    return None


@dataclass
class Outcome:
    """What a batch of decisions did, for logs, totals and the premature_deletion alert."""

    deleted: int = 0
    deleted_bytes: int = 0
    migrated: int = 0
    thinned: int = 0
    saved_bytes: int = 0  # by thinning
    skipped: int = 0  # protected by now, or their volume went away
    waited: set[int] = field(default_factory=set)  # deletions waiting for an object's lock
    failed: int = 0
    leftovers: int = 0  # quarantined files and spool leftovers removed past the ceiling
    spans: int = 0  # motion spans removed past their camera's ceiling
    access_records: int = 0  # access events and visits past [access] access_log_days
    premature: list[Decision] = field(default_factory=list)

    COUNTS = (
        "deleted",
        "deleted_bytes",
        "migrated",
        "thinned",
        "saved_bytes",
        "skipped",
        "failed",
        "leftovers",
        "spans",
        "access_records",
    )

    def add(self, other: Outcome) -> None:
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.premature += other.premature
        self.waited |= other.waited

    @property
    def waiting(self) -> int:
        """Deletions that wait for their object's S3 Object Lock to end (never tried)."""
        return len(self.waited)

    def counts(self) -> dict[str, int]:
        """The totals `ccvault purge --json` prints (a stable contract)."""
        return {name: getattr(self, name) for name in (*self.COUNTS, "waiting")}


class Executor:
    def __init__(
        self,
        writer: CatalogWriter,
        volumes: Callable[[], list[Volume]],
        now_ms: Callable[[], int],
        ffmpeg: str,
        actor: str = "daemon",
        checkpoint: Checkpoint = no_checkpoint,
        stopping: threading.Event | None = None,
        metrics: PurgeCounters | None = None,
        progress: Progress = SILENT,
        lock_until: LockUntil | None = None,
    ) -> None:
        self.writer = writer
        self.volumes = volumes
        self.now_ms = now_ms
        self.ffmpeg = ffmpeg
        self.actor = actor
        self.checkpoint = checkpoint
        # Set when the daemon stops: copies not yet started are left for the next pass.
        self.stopping = stopping or threading.Event()
        self.lock = ActionLock(writer.lock_base)
        self.metrics = metrics  # purged bytes by rule, counted once the files are gone
        self.progress = progress  # segments acted on, batch by batch (`ccvault purge`'s bar)
        # Retain-until of a segment archived to a locking bucket (locks.lock_dates(config));
        # None: such a bucket takes no migrations (an unlocked copy would break its promise).
        self.lock_until = lock_until

    def paths(self) -> dict[str, Path]:
        return local_roots(self.volumes())

    def apply(self, decisions: list[Decision], details: dict | None = None) -> Outcome:
        """Deletes first (they free space at once), then migrations, then thinning
        (`run_order`). Footage on an s3 volume is only deleted (it is not migrated on, and a
        keyframes-only copy needs its file here). A deletion the plan found locked (`WAIT`)
        is never tried: it says why it waits."""
        waits = [d for d in decisions if d.action == WAIT]
        waiting(waits)
        out = Outcome(waited={d.segment.id for d in waits})
        decisions = [d for d in decisions if d.action != WAIT]
        paths = roots_of(self.volumes())
        usable = [
            d
            for d in decisions
            if d.segment.volume in paths
            and (d.target is None or d.target in paths)
            and (d.action == DELETE or d.segment.volume in paths.local)
            and (self.lock_until is not None or not locking(paths, d.target))
        ]
        out.skipped += len(decisions) - len(usable)
        self.progress.expect(len(usable), Unit.ITEMS)
        by_action = defaultdict(list)
        for d in usable:
            by_action[d.action].append(d)
        for action, size in RUN_ORDER:
            todo = by_action[action]
            for i in range(0, len(todo), size):
                if self.stopping.is_set():
                    return out
                # The lock is taken per chunk, so a pressure check can slip in between.
                with self.lock:
                    if action == DELETE:
                        out.add(self._delete(todo[i : i + size], paths, details or {}))
                    else:
                        out.add(self._move(action, todo[i : i + size], paths))
                self.progress.advance(len(todo[i : i + size]))
        return out

    def _delete(self, decisions: list[Decision], paths: Roots, details: dict) -> Outcome:
        locked = still_locked(self.writer, paths, decisions, self.now_ms())
        out = Outcome(waited=locked)
        decisions = [d for d in decisions if d.segment.id not in locked]
        if decisions:
            out.add(self._delete_unlocked(decisions, paths, details))
        return out

    def _delete_unlocked(self, decisions: list[Decision], paths: Roots, details: dict) -> Outcome:
        rules: dict[str, int] = defaultdict(int)
        for d in decisions:
            rules[d.rule] += 1
        intents = self.writer.intents.begin_deletes(
            [d.segment.id for d in decisions],
            self.now_ms(),
            self.actor,
            {**details, "rules": dict(rules)},
        )
        self.checkpoint("delete.intent")
        done = {i.segment_id for i in intents}
        refused = _remove(paths, [(i.src_volume, i.src_path) for i in intents])
        self.checkpoint("delete.unlinked")
        # A copy the store refused to delete keeps its intent: recovery retries it.
        self.writer.intents.clear(
            i.id for i in intents if (i.src_volume, i.src_path) not in refused
        )
        self.checkpoint("delete.cleared")
        gone = [d for d in decisions if d.segment.id in done]
        if self.metrics is not None:
            for d in gone:
                self.metrics.purged(d.rule, d.segment.bytes)
        out = Outcome(
            deleted=len(gone),
            deleted_bytes=sum(d.segment.bytes for d in gone),
            skipped=len(decisions) - len(gone),
            premature=[d for d in gone if d.premature],
        )
        if gone:
            log.info(
                "purge.done",
                segments=len(gone),
                bytes=out.deleted_bytes,
                rules=dict(rules),
                skipped=out.skipped,
            )
        return out

    def _move(self, kind: str, decisions: list[Decision], paths: Roots) -> Outcome:
        """Migrate or thin a batch: copies first, then one switch, then the sources go."""
        plans = []
        for d in decisions:
            src_path = self._current_path(d.segment.id)
            if src_path is None:
                continue
            dst_volume = d.target or "" if kind == "migrate" else d.segment.volume
            tag = "" if kind == "migrate" else "-k"
            try:
                name = paths.free_name(dst_volume, src_path, tag)
            except ObjectStoreError as exc:
                log.error(f"{kind}.failed", segment_id=d.segment.id, error=str(exc))
                continue
            plans.append(PlannedMove(d.segment.id, dst_volume, name))
        intents = self.writer.intents.begin_moves(kind, plans, self.now_ms())
        self.checkpoint(f"{kind}.intent")
        switches, failed, stuck = [], 0, set()
        to_bucket = any(i.dst_volume in paths.buckets for i in intents)
        for it, got in run_copies(lambda it: self._try_copy(it, paths), intents, to_bucket):
            if isinstance(got, Switch):
                switches.append(got)
                continue
            if got is None:
                continue  # stopping: not started
            failed += 1
            log.error(f"{kind}.failed", segment_id=it.segment_id, error=str(got))
            if isinstance(got, FileExistsError):
                continue  # not ours: never remove it
            if _remove(paths, [(it.dst_volume or "", it.dst_path or "")]):
                stuck.add(it.id)  # its copy may be left: recovery removes it later
        self.checkpoint(f"{kind}.copied")
        done = self.writer.intents.switch_copies(switches, self.now_ms(), self.actor, kind)
        self.checkpoint(f"{kind}.switched")
        switched = {i.id for i in done}
        unlocked = lock_copies(self.writer, paths, done, self.lock_until, self.now_ms())
        self.checkpoint(f"{kind}.locked")
        # Each intent ends with one copy: the source when switched, else the new copy goes.
        left = [(i.src_volume, i.src_path) for i in done] + [
            (s.intent.dst_volume or "", s.intent.dst_path or "")
            for s in switches
            if s.intent.id not in switched
        ]
        # A source whose archived copy is not locked yet stays (recovery locks, then deletes).
        left = [item for item in left if item not in unlocked]
        refused = {**_remove(paths, left), **dict.fromkeys(unlocked, "not locked yet")}
        self.checkpoint(f"{kind}.source_deleted")
        self.writer.intents.clear(
            i.id
            for i in intents
            if i.id not in stuck
            and (i.src_volume, i.src_path) not in refused
            and (i.dst_volume, i.dst_path) not in refused
        )
        self.checkpoint(f"{kind}.cleared")
        out = Outcome(failed=failed, skipped=len(decisions) - len(done) - failed)
        if kind == "migrate":
            out.migrated = len(done)
        else:
            out.thinned = len(done)
            before = {d.segment.id: d.segment.bytes for d in decisions}
            out.saved_bytes = sum(
                before[s.intent.segment_id] - s.bytes for s in switches if s.intent.id in switched
            )
        if done:
            log.info(
                f"{kind}.done",
                segments=len(done),
                saved_bytes=out.saved_bytes or None,
                failed=failed,
            )
        return out

    def _current_path(self, segment_id: int) -> str | None:
        with self.writer.reader() as conn:
            found = queries.segments_by_ids(conn, [segment_id])
        return found[0].path if found and found[0].state == "ok" else None

    def _try_copy(self, it: Intent, paths: Roots) -> Switch | Exception | None:
        """One copy: its Switch, the error that failed it, or None when stopping first."""
        if self.stopping.is_set():
            return None
        try:
            return self._copy(it, paths)
        except (OSError, ThinError, CopyMismatch) as exc:
            return exc

    def _copy(self, it: Intent, paths: Roots) -> Switch:
        src = paths.local[it.src_volume] / it.src_path
        with self.writer.reader() as conn:
            expected = queries.segments_by_ids(conn, [it.segment_id])[0]
        if it.kind == "migrate":
            size = paths.copy_verified(src, it.dst_volume or "", it.dst_path or "", expected.sha256)
            return Switch(it, size, expected.sha256, expected.frames)
        dst = paths.local[it.dst_volume or ""] / (it.dst_path or "")
        make_dirs(dst.parent)
        if sha256_file(src) != expected.sha256:
            raise CopyMismatch(f"{src} no longer matches its catalogued hash; not thinned")
        media = keyframes_only(self.ffmpeg, src, dst)
        fsync_dir(dst.parent)
        return Switch(it, dst.stat().st_size, sha256_file(dst), media.frames)


class ActionLock:
    """One executor acts at a time: the daemon's jobs (a thread lock) and a `ccvault purge`
    run beside it (an flock beside the catalog), so no intent is recovered while in flight."""

    def __init__(self, catalog: Path) -> None:
        self._thread = threading.Lock()
        self._path = catalog.with_name(catalog.name + ".retention-lock")

    def __enter__(self) -> ActionLock:
        self._thread.acquire()
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self._fd)  # closing releases the flock
        self._thread.release()


def _remove(paths: Roots, items: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Roots.remove, with a failing object store reported as everything refused (logged):
    the intents stay, and recovery finishes them when the store answers again."""
    try:
        refused = paths.remove(items)
    except ObjectStoreError as exc:
        log.error("retention.remove_failed", error=str(exc), copies=len(items))
        return {item: "unreachable" for item in items if item[0] in paths.buckets}
    for (volume, rel), code in refused.items():
        log.warning("retention.remove_refused", volume=volume, path=rel, code=code)
    return refused


def recover(
    writer: CatalogWriter, volumes: list[Volume], lock_until: LockUntil | None = None
) -> list[dict]:
    """Finish or roll back every intent of this node whose volumes are available; report
    what was done. A copy switched to a locking bucket is locked before its source goes
    (`lock_until`; without it, such an intent waits)."""
    with ActionLock(writer.lock_base):
        return _recover(writer, roots_of(volumes), lock_until)


def _recover(writer: CatalogWriter, paths: Roots, lock_until: LockUntil | None) -> list[dict]:
    with writer.reader() as conn:
        rows = conn.execute("SELECT * FROM intents ORDER BY id").fetchall()
        own = own_volume_names(conn, writer.node)
    report, cleared = [], []
    for r in rows:
        if r["src_volume"] not in own:
            continue  # another node's operation (an intent is its source volume's node's)
        needed = [r["src_volume"]] + ([r["dst_volume"]] if r["dst_volume"] else [])
        if any(name not in paths for name in needed):
            log.warning("intent.deferred", intent=r["id"], reason="volume unavailable")
            continue
        src = (r["src_volume"], r["src_path"])
        dst = (r["dst_volume"], r["dst_path"]) if r["dst_volume"] else None
        if r["kind"] == "thin" and dst:  # ffmpeg's work file beside the copy
            _unlink_all([work_path(paths.local[dst[0]] / dst[1])])
        if r["switched"] and locking(paths, r["dst_volume"]):
            it = Intent(r["id"], r["kind"], r["segment_id"], *src, *(dst or (None, None)))
            if lock_copies(writer, paths, [it], lock_until, int(time.time() * 1000)):
                continue  # not locked: the source stays until it is
        if r["kind"] == "delete" or r["switched"]:
            refused = _remove(paths, [src])
            outcome = "finished"
        else:
            refused = _remove(paths, [dst] if dst else [])
            outcome = "rolled_back"
        if refused:
            log.warning("intent.deferred", intent=r["id"], reason=str(refused))
            continue
        cleared.append(r["id"])
        report.append(
            {
                "intent": r["id"],
                "kind": r["kind"],
                "segment_id": r["segment_id"],
                "outcome": outcome,
            }
        )
        log.warning(
            "intent.recovered",
            intent=r["id"],
            kind=r["kind"],
            segment_id=r["segment_id"],
            outcome=outcome,
        )
    if cleared:
        writer.intents.clear(cleared)
    return report


def remove_leftovers(executor: Executor, items: list[dict]) -> None:
    """Quarantined files and spool leftovers past the ceiling: file first, then the row (a
    replay after a crash finds the file gone and drops the row)."""
    if not items:
        return
    paths = executor.paths()
    with executor.lock:
        for item in items:
            if "quarantine_id" in item:
                _unlink_all([paths[item["volume"]] / item["path"]])
                executor.writer.segments.drop_quarantine(item["quarantine_id"])
            else:
                _unlink_all([Path(item["spool_file"])])
        executor.writer.record_event(
            executor.actor,
            "purge.leftovers",
            "files",
            {"count": len(items), "files": items},
            executor.now_ms(),
        )
    if executor.metrics is not None:
        executor.metrics.purged("leftovers", sum(i["bytes"] for i in items))
    log.info("purge.leftovers", files=len(items), bytes=sum(i["bytes"] for i in items))
