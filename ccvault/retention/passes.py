"""A retention pass: plan (pure planner over indexed candidate batches), then act.

`plan_pass` yields decision batches: routine rules, then per-camera quotas, then disk pressure.
`purge --dry-run` prints them; `run_pass` hands each batch to the executor as it comes, so the
pressure check sees the space the routine deletions already freed. Expiry is computed from the
segments' own times, so a missed or late pass simply catches up.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from ccvault.config.model import Config
from ccvault.host.events import Event, emit
from ccvault.retention import candidates, pressure, spans
from ccvault.retention.executor import Executor, Outcome, remove_leftovers
from ccvault.retention.locks import release_lapsed_legal_holds
from ccvault.retention.planner import DELETE, KEEP, Decision, Protection, over_quota, plan
from ccvault.storage.volumes import Blocked, Volume, local_roots
from ccvault.timefmt import utc_text

log = structlog.get_logger("ccvault.retention")


@dataclass
class PassState:
    """Filled in while a pass is planned: what pressure found, for alerts and status."""

    blocked: dict[str, Blocked] = field(default_factory=dict)
    under: dict[str, int] = field(default_factory=dict)
    # Segments whose deletion waits for their object's lock (filled in by `run_pass` as it
    # acts): their rows stay, so the quota and pressure steps do not take them again.
    waiting: set[int] = field(default_factory=set)


@dataclass
class _Tally:
    """In a preview nothing is carried out, so later steps must skip what earlier ones chose
    and count what they would free; in a real pass the catalog itself says so (and a
    catch-up must not hold every id; `PassState.waiting` has the few whose rows stay)."""

    taken: set[int] = field(default_factory=set)
    deleted: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per camera
    freed: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per volume

    def count(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if d.action != KEEP:
                self.taken.add(d.segment.id)
            if d.action == DELETE:
                self.deleted[d.segment.camera] += d.segment.bytes
                self.freed[d.segment.volume] += d.segment.bytes


def plan_pass(
    conn: sqlite3.Connection,
    config: Config,
    volumes: list[Volume],
    now_ms: int,
    *,
    include_keeps: bool = False,
    executed: bool = False,
    state: PassState | None = None,
) -> Iterator[list[Decision]]:
    """Decision batches for a pass at now_ms: routine rules, then per-camera quotas, then
    disk pressure. `executed`: each batch is carried out before the next is planned (so
    usage counters already reflect earlier deletions)."""
    state = state if state is not None else PassState()
    sc = candidates.scope(conn, config, [v for v in volumes if v.available])
    protections = candidates.protections(conn)
    covers = candidates.access_covers(conn, config, now_ms)
    spaces = pressure.measure(config, volumes, conn, now_ms)
    archives = pressure.archive_room(spaces)
    tally = _Tally()
    source = (
        candidates.everything(conn, sc)
        if include_keeps
        else candidates.routine(conn, sc, now_ms, archives)
    )
    for batch in source:
        decisions = plan(batch, sc.policies, protections, now_ms, archives, covers)
        if not executed:
            tally.count(decisions)
        yield decisions if include_keeps else [d for d in decisions if d.action != KEEP]
    tally.taken |= state.waiting
    yield from _quotas(conn, sc, protections, now_ms, tally)
    tally.taken |= state.waiting
    if executed:
        spaces = pressure.measure(config, volumes, conn, now_ms)
    else:  # a preview: count what the routine deletions above would free
        spaces = {
            name: replace(s, free=s.free + tally.freed[name], footage=s.footage - tally.freed[name])
            for name, s in spaces.items()
        }
    found = pressure.plan(conn, sc, spaces, protections, now_ms, archives, tally.taken)
    state.blocked, state.under = found.blocked, found.under
    yield found.decisions


def _quotas(
    conn: sqlite3.Connection,
    sc: candidates.Scope,
    protections: list[Protection],
    now_ms: int,
    tally: _Tally,
) -> Iterator[list[Decision]]:
    """Per-camera `max_bytes`: the oldest footage past min_days goes first."""
    per_camera = candidates.usage(conn)[0]
    for camera, policy in sc.policies.items():
        if policy.max_bytes is None:
            continue
        excess = per_camera.get(camera, 0) - tally.deleted[camera] - policy.max_bytes
        for batch in candidates.camera_oldest(conn, sc, camera):
            if excess <= 0:
                break
            decisions, excess = over_quota(
                batch, excess, "max_bytes:camera", sc.policies, protections, now_ms, tally.taken
            )
            for d in decisions:
                tally.freed[d.segment.volume] += d.segment.bytes
            yield decisions
            if batch[-1].end_ms > now_ms - policy.min_ms:
                break


def run_pass(
    conn: sqlite3.Connection,
    config: Config,
    volumes: list[Volume],
    executor: Executor,
    now_ms: int,
    state: PassState | None = None,
    spools: list[Path] | None = None,
    busy: set[Path] | None = None,
) -> Outcome:
    """Plan and act, batch by batch; then quarantined files, spool leftovers and motion spans
    past the ceiling (`spools`: the spool directories this process may clean; none beside a
    daemon)."""
    total = Outcome()
    started = time.monotonic()
    state = state if state is not None else PassState()
    release_lapsed_legal_holds(executor.writer, config, now_ms)  # before the plan reads them
    for batch in plan_pass(conn, config, volumes, now_ms, executed=True, state=state):
        if executor.stopping.is_set():
            break
        if batch:
            done = executor.apply(batch, {"pass_at_ms": now_ms})
            total.add(done)
            state.waiting |= done.waited
    report_premature(total.premature)
    if not executor.stopping.is_set():
        leftovers = find_leftovers(conn, config, volumes, spools or [], busy or set(), now_ms)
        remove_leftovers(executor, leftovers)
        total.leftovers = len(leftovers)
        expiry = expired_access(conn, config, now_ms)
        if expiry.events or expiry.visits:
            executor.writer.access.purge(expiry.before_ms, executor.actor, now_ms)
            total.access_records = expiry.events + expiry.visits
    protections = candidates.protections(conn)
    for batch in spans.expired(conn, config, protections, now_ms):
        if executor.stopping.is_set():
            break
        total.spans += executor.writer.motion.expire(
            batch.camera, batch.ids, batch.before_ms, executor.actor, executor.now_ms()
        )
    log.info(
        "retention.pass",
        leftovers=total.leftovers,
        spans=total.spans,
        access_records=total.access_records,
        deleted=total.deleted,
        deleted_bytes=total.deleted_bytes,
        migrated=total.migrated,
        thinned=total.thinned,
        saved_bytes=total.saved_bytes,
        skipped=total.skipped,
        waiting=total.waiting,
        failed=total.failed,
        seconds=round(time.monotonic() - started, 3),
    )
    return total


def run_pressure(
    conn: sqlite3.Connection, config: Config, volumes: list[Volume], executor: Executor, now_ms: int
) -> PassState:
    """The 30-second check: free what volumes under their reserve need, nothing else."""
    state = PassState()
    spaces = pressure.measure(config, volumes, conn, now_ms)
    if not any(s.need()[0] > 0 for s in spaces.values()):
        return state
    sc = candidates.scope(conn, config, [v for v in volumes if v.available])
    found = pressure.plan(
        conn, sc, spaces, candidates.protections(conn), now_ms, pressure.archive_room(spaces), set()
    )
    state.blocked, state.under = found.blocked, found.under
    outcome = executor.apply(found.decisions, {"pressure": state.under})
    report_premature(outcome.premature)
    return state


def report_premature(decisions: list[Decision]) -> None:
    """The `premature_deletion` event: which cameras lost footage inside min_days, and what."""
    if not decisions:
        return
    cameras: dict[str, dict] = {}
    for d in decisions:
        c = d.segment
        entry = cameras.setdefault(
            c.camera,
            {
                "from_ms": c.start_ms,
                "to_ms": c.end_ms,
                "bytes": 0,
                "segments": 0,
                "volume": c.volume,
            },
        )
        entry["from_ms"] = min(entry["from_ms"], c.start_ms)
        entry["to_ms"] = max(entry["to_ms"], c.end_ms)
        entry["bytes"] += c.bytes
        entry["segments"] += 1
    total = sum(e["bytes"] for e in cameras.values())
    log.error("premature_deletion", cameras=cameras, rule=decisions[0].rule, bytes=total)
    for name, entry in cameras.items():
        emit(
            Event(
                "premature_deletion",
                f"camera {name}: {entry['segments']} segment(s) inside min_days deleted to "
                f"make room on volume {entry['volume']}",
                {"camera": name},
                {
                    "from": utc_text(entry["from_ms"]),
                    "to": utc_text(entry["to_ms"]),
                    "bytes": str(entry["bytes"]),
                    "rule": decisions[0].rule,
                },
            )
        )


def totals(decisions: list[Decision]) -> dict:
    """Segments and bytes per action, and per camera and action (the dry run's `totals`)."""
    actions: dict[str, dict[str, int]] = {}
    per_camera: dict[str, dict[str, dict[str, int]]] = {}
    for d in decisions:
        for bucket in (
            actions.setdefault(d.action, {"segments": 0, "bytes": 0}),
            per_camera.setdefault(d.segment.camera, {}).setdefault(
                d.action, {"segments": 0, "bytes": 0}
            ),
        ):
            bucket["segments"] += 1
            bucket["bytes"] += d.segment.bytes
    return {"actions": actions, "cameras": per_camera}


def find_leftovers(
    conn: sqlite3.Connection,
    config: Config,
    volumes: list[Volume],
    spools: list[Path],
    busy: set[Path],
    now_ms: int,
) -> list[dict]:
    """Quarantined files and spool leftovers follow the same privacy ceiling (the longest
    `max_days` of any camera): what is past it, to be removed by
    `executor.remove_leftovers` (the dry run only lists it). Reads, changes nothing."""
    ceiling = max(
        [config.retention.max_days] + [config.retention_for(c).max_days for c in config.cameras]
    )
    before_ms = now_ms - round(ceiling * 86_400_000)
    roots = local_roots(volumes)
    removed = []
    for row in conn.execute(
        "SELECT q.id, v.name AS volume, q.path, q.bytes FROM quarantine q"
        " JOIN volumes v ON v.id = q.volume_id WHERE q.created_ms < ?",
        (before_ms,),
    ):
        if row["volume"] in roots:
            removed.append(
                {
                    "quarantine_id": row["id"],
                    "volume": row["volume"],
                    "path": row["path"],
                    "bytes": row["bytes"],
                }
            )
    for spool in spools:
        for path in sorted(spool.glob("*/*/*")) if spool.is_dir() else []:
            if path.parent in busy or not path.is_file():
                continue
            if path.stat().st_mtime * 1000 < before_ms:
                removed.append({"spool_file": str(path), "bytes": path.stat().st_size})
    return removed


@dataclass(frozen=True, slots=True)
class AccessExpiry:
    """Access events and visits past `[access] access_log_days`: personal data, purged like
    footage (audited, shown by the dry run)."""

    before_ms: int
    events: int
    visits: int

    def as_json(self) -> dict[str, int]:
        return {"before_ms": self.before_ms, "events": self.events, "visits": self.visits}


def expired_access(conn: sqlite3.Connection, config: Config, now_ms: int) -> AccessExpiry:
    before = now_ms - round(config.access.access_log_days * 86_400_000)
    events = conn.execute(
        "SELECT COUNT(*) FROM access_events WHERE time_ms < ?", (before,)
    ).fetchone()[0]
    visits = conn.execute(
        "SELECT COUNT(*) FROM visits WHERE COALESCE(left_ms, entered_ms) < ?", (before,)
    ).fetchone()[0]
    return AccessExpiry(before, events, visits)
