"""Evidence export jobs: validate, record, pin, run in order, survive restarts, expire.

A job is a catalog row (`exports`) plus an `export_pins` row over its range, made in one
transaction before any byte is copied, so retention keeps the footage from the moment the job
exists until it ends (the planner's `export_pin` rule). The daemon runs queued jobs one at a
time in its worker thread; `ccvault export` records its job already claimed and runs it in its
own process. Whoever runs a job holds that job's lock (`FileLock`), so it is only ever run by
one process, and a job a crash left `running` is run again from scratch by the next daemon
(`resume`). Bundles in `[export] dir` expire after `keep_days` (`purge_expired`, a daemon job).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from ccvault.catalog.nodes import owned
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.errors import Busy, Refused
from ccvault.evidence import bundle as evidence
from ccvault.evidence import requests, signing
from ccvault.evidence.runner import JobRunner, export_row
from ccvault.evidence.visit import VisitRequest
from ccvault.host import threads
from ccvault.host.clock import Clock
from ccvault.host.durable import fsync_dir
from ccvault.host.lock import FileLock
from ccvault.host.progress import SILENT, Progress, Unit
from ccvault.storage.media import sha256_file
from ccvault.storage.volumes import Volume
from ccvault.timefmt import utc_text

log = structlog.get_logger("ccvault.evidence.jobs")

DAY_MS = 86_400_000


@dataclass(frozen=True)
class _Ask:
    """An export asked for and validated, before it is recorded."""

    camera: str  # the exports row's camera: a visit's cameras, comma-separated
    from_ms: int
    to_ms: int
    final: Path | None  # the bundle directory asked for (None: one in [export] dir)
    label: str  # in the name of a bundle made in [export] dir
    visit: VisitRequest | None = None


class ExportJobs:
    """Export jobs for one installation. The daemon makes one at start (which also makes the
    signing key on first start) and calls `resume()`; the API calls `submit` and `get`."""

    def __init__(
        self,
        config: Config,
        writer: CatalogWriter,
        volumes: Callable[[], list[Volume]],
        clock: Clock,
        ffmpeg: str,
        actor: str = "daemon",
    ) -> None:
        self.config, self.writer, self.volumes, self.clock = config, writer, volumes, clock
        self.ffmpeg = ffmpeg
        self.key = signing.installation_key(config.signing_key_path, writer, actor, clock.wall_ms())
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.runner = JobRunner(
            config, writer, volumes, clock, ffmpeg, self.key, self._stopping.is_set, self.get
        )

    # --- asking for an export -----------------------------------------------------------

    def prepare(
        self,
        camera: str,
        from_ms: int,
        to_ms: int,
        reason: str,
        actor: str,
        out_dir: Path | None = None,
    ) -> int:
        """Validate, then record the job (queued) and its pin; nothing runs yet."""
        return self._record(
            self._camera_ask(camera, from_ms, to_ms, reason, out_dir), reason, actor
        )

    def prepare_visit(
        self, visit_id: int, reason: str, actor: str, out_dir: Path | None = None
    ) -> int:
        """As `prepare`, for a visit: its room's cameras over the padded visit, and its door
        events in the manifest (`evidence.visit`)."""
        return self._record(self._visit_ask(visit_id, reason, out_dir), reason, actor)

    def _camera_ask(
        self, camera: str, from_ms: int, to_ms: int, reason: str, out_dir: Path | None
    ) -> _Ask:
        final = self.validate(camera, from_ms, to_ms, reason, out_dir)
        return _Ask(camera, from_ms, to_ms, final, camera)

    def _visit_ask(self, visit_id: int, reason: str, out_dir: Path | None) -> _Ask:
        asked, final = requests.validate_visit(
            self.config, self.writer, visit_id, reason, self.clock.wall_ms(), out_dir
        )
        return _Ask(
            ",".join(asked.cameras), asked.from_ms, asked.to_ms, final, f"visit{visit_id}", asked
        )

    def _record(
        self, ask: _Ask, reason: str, actor: str, claim: list[FileLock] | None = None
    ) -> int:
        """The job row and its pin(s) in one transaction. With `claim`, this process takes the
        job's lock before the row commits, so no other process can ever start it."""
        start = datetime.fromtimestamp(ask.from_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")

        def bundle_dir(export_id: int) -> str:
            path = (
                ask.final or self.config.export_dir.resolve() / f"{export_id}-{ask.label}-{start}"
            )
            if os.path.lexists(path):
                raise Refused("out", f"{path} exists already (evidence is never overwritten)")
            if claim is not None:  # a new id: nobody else can hold its lock
                lock = FileLock.take(self._lock_path(export_id))
                if lock is None:
                    raise Busy(f"export {export_id}", "another process holds its lock")
                claim.append(lock)
            return str(path)

        details: dict[str, Any] = {
            "from": utc_text(ask.from_ms),
            "to": utc_text(ask.to_ms),
            "key_fingerprint": self.key.fingerprint,
        }
        visit = None
        if ask.visit is not None:
            details |= {
                "visit": ask.visit.visit_id,
                "room": ask.visit.room,
                "cameras": list(ask.visit.cameras),
            }
            visit = (ask.visit.visit_id, ask.visit.cameras)
        return self.writer.exports.add(
            ask.camera,
            ask.from_ms,
            ask.to_ms,
            reason.strip(),
            actor,
            bundle_dir,
            details,
            self.clock.wall_ms(),
            visit,
        )

    def submit(
        self,
        camera: str,
        from_ms: int,
        to_ms: int,
        reason: str,
        actor: str,
        out_dir: Path | None = None,
    ) -> dict[str, Any]:
        """prepare, then queue it for the worker thread (one job at a time, in order). Returns
        the job as recorded (queued), read before the worker can start it."""
        return self._queued(self.prepare(camera, from_ms, to_ms, reason, actor, out_dir))

    def submit_visit(self, visit_id: int, reason: str, actor: str) -> dict[str, Any]:
        """prepare_visit, then queue it (as `submit`)."""
        return self._queued(self.prepare_visit(visit_id, reason, actor))

    def _queued(self, export_id: int) -> dict[str, Any]:
        job = self.get(export_id) or {}
        self._enqueue(export_id)
        return job

    def export_now(
        self,
        camera: str,
        from_ms: int,
        to_ms: int,
        reason: str,
        actor: str,
        out_dir: Path | None,
        progress: Callable[[float], None] | None = None,
        started: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """`ccvault export`: recorded already claimed by this process, then run here."""
        ask = self._camera_ask(camera, from_ms, to_ms, reason, out_dir)
        return self._run_claimed(ask, reason, actor, progress, started)

    def export_visit_now(
        self,
        visit_id: int,
        reason: str,
        actor: str,
        out_dir: Path | None,
        progress: Callable[[float], None] | None = None,
        started: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """`ccvault export --visit`: as `export_now`."""
        ask = self._visit_ask(visit_id, reason, out_dir)
        return self._run_claimed(ask, reason, actor, progress, started)

    def _run_claimed(
        self,
        ask: _Ask,
        reason: str,
        actor: str,
        progress: Callable[[float], None] | None,
        started: Callable[[int], None] | None,
    ) -> dict[str, Any]:
        claim: list[FileLock] = []
        try:
            export_id = self._record(ask, reason, actor, claim)
            if started is not None:
                started(export_id)
            return self.runner.run(export_id, progress or (lambda _f: None))
        finally:
            for lock in claim:
                lock.release()

    # --- running --------------------------------------------------------------------------

    def validate(
        self, camera: str, from_ms: int, to_ms: int, reason: str, out_dir: Path | None = None
    ) -> Path | None:
        """Refuse before anything is recorded (`requests.validate`)."""
        return requests.validate(self.config, self.writer, camera, from_ms, to_ms, reason, out_dir)

    def run(
        self, export_id: int, progress: Callable[[float], None] | None = None
    ) -> dict[str, Any]:
        """Run a job now, in this thread (the worker; tests). Returns the job (`get`) with
        the bundle's files; a failure is recorded, then raised (CheckFailed and the like).
        Busy when another process runs it (its lock is held)."""
        lock = FileLock.take(self._lock_path(export_id))
        if lock is None:
            raise Busy(f"export {export_id}", "another process is running it")
        try:
            return self.runner.run(export_id, progress or (lambda _f: None))
        finally:
            lock.release()

    def _lock_path(self, export_id: int) -> Path:
        catalog = self.config.lock_base
        return catalog.with_name(f"{catalog.name}.export-{export_id}.lock")

    # --- the worker thread and restarts ---------------------------------------------------

    def resume(self) -> list[int]:
        """At daemon start: jobs left queued, or running with no live runner, are run again
        from scratch (their partial directory goes first). A job another process is running
        right now is skipped by the worker (its lock is held). Returns the queued ids."""
        own, params = owned("node", self.writer.node)  # another node's jobs are its own
        with self.writer.reader() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM exports WHERE state IN ('queued', 'running') AND {own}"
                    " ORDER BY id",
                    params,
                )
            ]
        for export_id in ids:
            self._enqueue(export_id)
        return ids

    def _enqueue(self, export_id: int) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threads.Thread(target=self._work, name="export", daemon=True)
                self._thread.start()
        self._queue.put(export_id)

    def _work(self) -> None:
        while (export_id := self._queue.get()) is not None and not self._stopping.is_set():
            try:
                self.run(export_id)
            except evidence.Cancelled:
                return
            except Busy as exc:
                log.info("export.skipped", export_id=export_id, reason=exc.problem)
            except Exception as exc:  # recorded in the row; the worker goes on
                log.error("export.worker_error", export_id=export_id, error=str(exc))

    def stop(self, timeout: float = 30) -> None:
        """Stop after the current file; an unfinished job is redone at the next start."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def apply(self, config: Config) -> None:
        self.config = self.runner.config = config

    # --- reading and expiry ---------------------------------------------------------------

    def get(self, export_id: int) -> dict[str, Any] | None:
        row = export_row(self.writer, export_id)
        return None if row is None else job_json(row, self.writer.node)

    def purge_expired(self, now_ms: int, actor: str = "retention") -> list[dict[str, Any]]:
        """Bundles in [export] dir finished more than keep_days ago are deleted (audited
        `export.expired` first: a record proves an attempt). Bundles in allowed_dirs were
        handed over to someone else's storage and are not ours to delete."""
        root = self.config.export_dir.resolve()
        cutoff = now_ms - round(self.config.export.keep_days * DAY_MS)
        own, params = owned("node", self.writer.node)  # its bundles are on its disks
        with self.writer.reader() as conn:
            rows = conn.execute(
                f"SELECT * FROM exports WHERE state = 'done' AND finished_ms < ? AND {own}"
                " ORDER BY id",
                (cutoff, *params),
            ).fetchall()
        expired = []
        for row in rows:
            bundle = Path(row["dir"])
            trash = bundle.with_name(f".{bundle.name}.expired")
            shutil.rmtree(trash, ignore_errors=True)  # a crash mid-delete
            if not bundle.is_dir() or not bundle.resolve().is_relative_to(root):
                continue
            manifest = bundle / evidence.MANIFEST
            item = {
                "id": row["id"],
                "camera": row["camera"],
                "dir": str(bundle),
                "finished": utc_text(row["finished_ms"]),
                "manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
            }
            self.writer.record_event(actor, "export.expired", f"export:{row['id']}", item, now_ms)
            os.rename(bundle, trash)  # gone from its name at once, never half there
            fsync_dir(bundle.parent)
            shutil.rmtree(trash)
            expired.append(item)
        return expired


def job_json(row: Any, here: str | None) -> dict[str, Any]:
    """A job as the API and `--json` show it; `here`: the node reading it (None: no node)."""
    bundle = Path(row["dir"])
    manifest = bundle / evidence.MANIFEST
    done = row["state"] == "done" and manifest.is_file()
    current = sha256_file(manifest) if done else None
    return {
        "id": row["id"],
        "camera": row["camera"],
        "cameras": [row["camera"]] if row["cameras"] is None else json.loads(row["cameras"]),
        "visit": row["visit_id"],
        "from": utc_text(row["from_ms"]),
        "to": utc_text(row["to_ms"]),
        "reason": row["reason"],
        "actor": row["actor"],
        "node": row["node"],
        "state": row["state"],
        "progress": round(row["progress"], 4),
        "error": row["error"],
        "created": utc_text(row["created_ms"]),
        "finished": utc_text(row["finished_ms"]) if row["finished_ms"] else None,
        "dir": str(bundle),
        "bundle": bundle.name,
        "pinned": row["pin_id"] is not None,
        # As recorded when it finished (jobs from before that was recorded: as on disk).
        "manifest_sha256": row["manifest_sha256"] or current,
        "available": done,
        "verification": verification(row, here, current),
    }


def verification(row: Any, here: str | None, current: str | None) -> dict[str, Any]:
    """Whether the bundle handed over is still the one on disk — cheap, at every look: its
    manifest (which lists every file's SHA-256, signed) against the SHA-256 recorded when the
    job finished — and the last full check of every file (`check_bundles`).

    state: pending (not done), failed_job (the job failed: no bundle), elsewhere (another
    node's disks), gone (expired or removed), changed (the manifest is not the one recorded),
    failed (the last full check found a problem), verified (it passed, manifest unchanged
    since), unchecked (manifest unchanged, never fully checked)."""
    recorded = row["manifest_sha256"]
    checked = utc_text(row["verified_ms"]) if row["verified_ms"] else None
    matches = None if current is None or recorded is None else current == recorded
    if row["state"] in ("queued", "running"):
        state = "pending"
    elif row["state"] == "failed":
        state = "failed_job"
    elif current is None:
        state = "elsewhere" if here is not None and row["node"] not in (None, here) else "gone"
    elif matches is False:
        state = "changed"
    elif checked and row["verify_problem"]:
        state = "failed"
    elif checked:
        state = "verified"
    else:
        state = "unchecked"
    return {
        "state": state,
        "manifest_matches": matches,
        "checked": checked,
        "problem": row["verify_problem"],
    }


def list_jobs(conn: Any, here: str | None, limit: int) -> list[dict[str, Any]]:
    """Every node's export jobs, newest first: the site's record of what was handed over (the
    rows outlive the bundles, which expire)."""
    rows = conn.execute("SELECT * FROM exports ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [job_json(row, here) for row in rows]


def check_bundles(
    config: Config,
    writer: CatalogWriter,
    actor: str,
    now_ms: Callable[[], int],
    progress: Progress = SILENT,
) -> list[dict[str, Any]]:
    """Re-check every bundle this node still keeps, file by file (`evidence.verify`, against
    this installation's key), and record each result on its job (audited `export.verify`).
    Returns the jobs as listed after their check."""
    from ccvault.evidence.verify import verify

    raw = signing.installation_public_key(config.signing_key_path)
    trusted = None if raw is None else signing.fingerprint(raw)
    own, params = owned("node", writer.node)
    with writer.reader() as conn:
        rows = conn.execute(
            f"SELECT * FROM exports WHERE state = 'done' AND {own} ORDER BY id", params
        ).fetchall()
    progress.expect(len(rows), Unit.ITEMS)
    checked = []
    for row in rows:
        progress.advance(1)
        bundle = Path(row["dir"])
        if not (bundle / evidence.MANIFEST).is_file():
            continue  # expired or removed: nothing left to check
        result = verify(bundle, trusted)
        problem = None if result.ok else (result.problems or ["does not verify"])[0]
        if result.ok and row["manifest_sha256"] not in (None, result.manifest_sha256):
            problem = "its manifest is not the one recorded when the export finished"
        writer.exports.checked(
            row["id"],
            problem,
            actor,
            {"bundle": bundle.name, "manifest_sha256": result.manifest_sha256},
            now_ms(),
        )
        checked.append(row["id"])
    return [job_json(export_row(writer, i), writer.node) for i in checked]
