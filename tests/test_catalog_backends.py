"""The catalog behaves the same on SQLite and on PostgreSQL (the `catalog_target` fixture runs
each test on both): one schema and migration path, one writer discipline, the same rows.

PostgreSQL is a real server (tests/peers/postgres.py), a fresh database per test, reached over
TCP by a password role whose password is in a file, as a node would reach it.
"""

from __future__ import annotations

import json
import multiprocessing
import secrets
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ccvault.catalog import db, queries
from ccvault.catalog.audit import AuditLog
from ccvault.catalog.audit_checkpoints import CheckpointKind
from ccvault.catalog.audit_verify import Verifier
from ccvault.catalog.rows import MediaInfo, NewHold, NewSegment, PlannedMove, Switch
from ccvault.catalog.schema import MIGRATIONS, migrate
from ccvault.catalog.writer import CatalogWriter
from ccvault.catalog.writes.locks import ObjectLock
from ccvault.errors import Busy
from ccvault.host.keys import KeyFile, load_or_create
from ccvault.retention import candidates, holds
from tests.conftest import pg_catalog
from tests.peers.pg_fixture import APP_ROLE
from tests.peers.postgres import PostgresServer, postgres_available

pytestmark = pytest.mark.timeout(120)

MEDIA = MediaInfo(duration_ms=2000, codec="h264", width=160, height=90, frames=10, keyframes=2)
T0 = 1_800_000_000_000  # past 2**31 ms: times need 64-bit columns


def segment(camera: str, start_ms: int, path: str, size: int = 1000) -> NewSegment:
    return NewSegment(
        camera, "hot", start_ms, start_ms + 2000, path, size, "ab" * 32, MEDIA, "recorded"
    )


def new_writer(target: db.Target, tmp_path: Path) -> CatalogWriter:
    writer = CatalogWriter(target, AuditLog(tmp_path / "audit.jsonl"))
    writer.volumes.register("hot", "uuid-hot", T0)
    return writer


def test_a_new_catalog_is_migrated_once_to_the_newest_version(
    catalog_target: db.Target, tmp_path: Path
) -> None:
    writer = new_writer(catalog_target, tmp_path)
    first_id = writer.catalog_id
    writer.close()
    again = CatalogWriter(catalog_target)  # opened again: nothing to migrate, same catalog
    assert again.catalog_id == first_id
    with again.reader() as conn:
        assert migrate(conn) == len(MIGRATIONS)
        assert queries.catalog_id(conn) == first_id
        # The widened CHECK of the rebuilt (SQLite) or altered (PostgreSQL) tables holds.
    again.cameras.set_state("door", "failing", T0, "spool full")
    with again.reader() as conn:
        assert conn.execute("SELECT state FROM cameras").fetchone()["state"] == "failing"
    again.close()
    if not isinstance(catalog_target, Path):  # a tool's writer, no state_dir: its own locks
        assert not again.lock_base.parent.exists()  # ...are gone with it, none left in /tmp


def test_segments_usage_and_range_queries(catalog_target: db.Target, tmp_path: Path) -> None:
    writer = new_writer(catalog_target, tmp_path)
    ids = [
        writer.segments.add(segment("door", T0 + i * 2000, f"door/{i}.mp4"), T0) for i in range(3)
    ]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 3
    assert writer.segments.add(segment("door", T0, "door/0.mp4"), T0) is None, "same path: no row"
    writer.segments.add(segment("yard", T0, "yard/0.mp4", size=5000), T0)
    with writer.reader() as conn:
        assert candidates.usage(conn) == ({"door": 3000, "yard": 5000}, {"hot": 8000})
        found = queries.segments_in_range(conn, "door", T0 + 1000, T0 + 4500)
        assert [s.id for s in found] == ids[:3]
        assert queries.camera(conn, "door").max_segment_ms == 2000
    writer.segments.mark_missing([ids[0]])  # the usage triggers follow the state
    with writer.reader() as conn:
        assert candidates.usage(conn) == ({"door": 2000, "yard": 5000}, {"hot": 7000})
        assert json.dumps(queries.footage_bytes(conn)) == '{"hot": 7000}'  # an int, no Decimal
    writer.close()


def test_holds_keep_their_ids_through_a_rebuild_and_are_audited(
    catalog_target: db.Target, tmp_path: Path
) -> None:
    writer = new_writer(catalog_target, tmp_path)
    hold = NewHold(T0, T0 + 60_000, None, "incident 7", "cli:ann", ("door",))
    first = writer.holds.add(hold, T0)
    restored = writer.holds.add(NewHold(T0, T0 + 1, None, "restored", "cli:ann", (), id=7), T0)
    after = writer.holds.add(hold, T0)  # numbered past the restored id, not into it
    assert (first, restored, after) == (1, 7, 8)
    assert writer.holds.release(first, "cli:bob", "closed", T0 + 5)
    assert not writer.holds.release(first, "cli:bob", "again", T0 + 6)
    with writer.reader() as conn:
        listed = holds.listing(conn, T0 + 10)
    assert [(h["id"], h["state"], h["cameras"]) for h in listed] == [
        (1, "released", ["door"]),
        (7, "active", []),
        (8, "active", ["door"]),
    ]
    records = list(writer.audit_log.records())
    assert [(r["action"], r["object"]) for r in records] == [
        ("hold.add", "hold:1"),
        ("hold.add", "hold:7"),
        ("hold.add", "hold:8"),
        ("hold.release", "hold:1"),
    ]
    assert writer.audit_log.verify().ok
    writer.close()


def test_a_held_segment_gets_no_delete_intent(catalog_target: db.Target, tmp_path: Path) -> None:
    writer = new_writer(catalog_target, tmp_path)
    held = writer.segments.add(segment("door", T0, "door/held.mp4"), T0)
    free = writer.segments.add(segment("door", T0 + 10_000, "door/free.mp4"), T0)
    writer.holds.add(NewHold(T0, T0 + 2000, None, "keep", "cli:ann", ("door",)), T0)
    intents = writer.intents.begin_deletes([held, free], T0 + 1, "daemon", {"rule": "age"})
    assert [(i.kind, i.segment_id) for i in intents] == [("delete", free)]
    moves = writer.intents.begin_moves("migrate", [PlannedMove(held, "cold", "door/x.mp4")], T0)
    with writer.reader() as conn:
        assert [s.id for s in queries.segments_by_ids(conn, [held, free])] == [held]
        assert queries.intent_paths(conn) == {
            ("hot", "door/free.mp4"),
            ("hot", "door/held.mp4"),
            ("cold", "door/x.mp4"),
        }
    writer.intents.clear(i.id for i in [*intents, *moves])
    with writer.reader() as conn:
        assert queries.intent_paths(conn) == set()
    writer.close()


def test_object_locks_reach_the_planner_and_go_with_their_segment(
    catalog_target: db.Target, tmp_path: Path
) -> None:
    """What ccvault set on archived objects (S3 Object Lock), a legal hold change pending
    until the store takes it, and the planner's candidate carrying the lock."""
    writer = new_writer(catalog_target, tmp_path)
    kept = writer.segments.add(segment("door", T0, "door/kept.mp4"), T0)
    gone = writer.segments.add(segment("door", T0 + 10_000, "door/gone.mp4"), T0)
    until = T0 + 7 * 86_400_000
    writer.locks.record(
        [ObjectLock(i, "compliance", until, False) for i in (kept, gone, gone + 99)]
    )  # the last: a segment deleted meanwhile gets no row
    writer.locks.want_holds({kept: True}, T0)
    writer.locks.hold_failed(kept, T0 + 5000)

    def lock_rows() -> list[tuple]:
        with writer.reader() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    "SELECT segment_id, legal_hold, hold_wanted, attempts, next_try_ms"
                    " FROM object_locks ORDER BY segment_id"
                )
            ]

    assert lock_rows() == [(kept, 0, 1, 1, T0 + 5000), (gone, 0, None, 0, None)]
    writer.locks.hold_set(kept, True)
    assert lock_rows() == [(kept, 1, None, 0, None), (gone, 0, None, 0, None)]
    scope = candidates.Scope({}, {"hot": "hot"}, {}, {}, frozenset({"hot"}))
    with writer.reader() as conn:
        c = candidates.at_instant(conn, scope, "door", T0 + 1)
    assert c is not None and (c.id, c.lock_until_ms, c.lock_mode, c.legal_hold) == (
        kept,
        until,
        "compliance",
        True,
    )
    intents = writer.intents.begin_deletes([gone], T0 + 1, "daemon", {"rule": "max_days"})
    writer.intents.clear(i.id for i in intents)
    assert [r[0] for r in lock_rows()] == [kept]  # its lock row went with the segment
    writer.close()


def test_thinned_copies_switch_rows_and_count_what_they_saved(
    catalog_target: db.Target, tmp_path: Path
) -> None:
    writer = new_writer(catalog_target, tmp_path)
    big = 3 * 2**30  # 3 GiB segments: the saving passes 2**32 (64-bit, kept as text in meta)
    ids = [
        writer.segments.add(segment("door", T0 + i * 2000, f"door/{i}.mp4", big), T0)
        for i in (0, 1)
    ]
    for round_, size in enumerate((1000, 1000)):  # the second pass adds to the counters
        moves = [PlannedMove(i, "hot", f"door/{i}.thin{round_}.mp4") for i in ids]
        intents = writer.intents.begin_moves("thin", moves, T0)
        switches = [Switch(it, size, "cd" * 32, 2) for it in intents]
        done = writer.intents.switch_copies(switches, T0 + 1, "daemon", "thin")
        assert [it.segment_id for it in done] == ids
        writer.intents.clear(it.id for it in intents)
    with writer.reader() as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'thin%'").fetchall())
        rows = queries.segments_by_ids(conn, ids)
    assert meta == {"thinned_segments": "4", "thin_saved_bytes": str(2 * (big - 1000))}
    assert [(s.path, s.bytes) for s in rows] == [(f"door/{i}.thin1.mp4", 1000) for i in ids]
    writer.close()


def test_a_reader_cannot_write(catalog_target: db.Target, tmp_path: Path) -> None:
    writer = new_writer(catalog_target, tmp_path)
    with writer.reader() as conn, pytest.raises(db.Error):
        conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    writer.close()


def test_a_kept_reader_sees_each_commit_and_keeps_no_transaction_open(
    catalog_target: db.Target, tmp_path: Path
) -> None:
    """Each thread's read-only connection is kept across `reader()` blocks: it still sees
    every commit, and a read transaction left open ends with the outermost block."""
    writer = new_writer(catalog_target, tmp_path)
    count = "SELECT COUNT(*) FROM segments"
    with writer.reader() as conn:
        before = conn.execute(count).fetchone()[0]
    writer.segments.add(segment("door", T0, "door/a.mp4"), T0)
    with writer.reader() as again:
        assert again is conn, "one connection a thread"
        assert again.execute(count).fetchone()[0] == before + 1
        again.execute("BEGIN")  # a snapshot, as a backup takes one
        with writer.reader() as inner:
            inner.execute(count).fetchone()
        assert again.in_transaction, "an inner block leaves the outer one's transaction"
    assert not conn.in_transaction, "the outermost block ends it"
    writer.segments.add(segment("door", T0 + 2000, "door/b.mp4"), T0)
    with writer.reader() as last:
        assert last.execute(count).fetchone()[0] == before + 2
    writer.close()


def test_a_sqlite_catalog_never_loads_the_postgresql_driver(tmp_path: Path) -> None:
    """Every command imports the catalog; psycopg costs ~0.1 s (a second on a loaded box) and
    only a PostgreSQL catalog needs it."""
    code = (
        "import sys; from pathlib import Path; import ccvault.cli, ccvault.service.parts;"
        "from ccvault.catalog.writer import CatalogWriter;"
        f"CatalogWriter(Path({str(tmp_path / 'c.sqlite')!r})).close();"
        "print('psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- two writers

HOLDS_EACH = 25


def _add_holds(target: db.Target, audit: Path, who: str, start: Any) -> None:
    writer = CatalogWriter(target, AuditLog(audit))
    start.wait(60)  # both writers open, then both add at once
    for i in range(HOLDS_EACH):
        writer.holds.add(NewHold(T0, T0 + 1000, None, f"{who} {i}", who, ()), T0 + i)
    writer.close()


def test_two_writers_adding_holds_at_once_lose_none_and_keep_one_chain(
    catalog_target: db.Target, tmp_path: Path
) -> None:
    """Two processes (two nodes, as far as the catalog can tell) add holds at the same moment:
    every hold is kept, ids are distinct, and the audit chain has one record per hold, in one
    unbroken chain whose head the catalog holds."""
    audit = tmp_path / "audit.jsonl"
    CatalogWriter(catalog_target, AuditLog(audit)).close()  # migrated before the race
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_add_holds, args=(catalog_target, audit, who, start))
        for who in ("node-a", "node-b")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
        assert p.exitcode == 0
    writer = CatalogWriter(catalog_target, AuditLog(audit))
    with writer.reader() as conn:
        listed = holds.listing(conn, T0)
    assert len(listed) == 2 * HOLDS_EACH == len({h["id"] for h in listed})
    records = list(writer.audit_log.records())
    assert sorted(r["object"] for r in records) == sorted(f"hold:{h['id']}" for h in listed)
    assert [r["seq"] for r in records] == list(range(1, 2 * HOLDS_EACH + 1))
    assert writer.audit_log.verify().ok
    head = writer.audit_chain.head()
    assert head is not None and head.seq == 2 * HOLDS_EACH
    writer.close()


def _node_writer(target: db.Target, state: Path, node: str | None) -> CatalogWriter:
    """A node's writer: its own audit file and signing key in its own state directory."""
    load_or_create(state / "signing-key.pem")
    log = AuditLog(state / "audit.jsonl", key=KeyFile(state / "signing-key.pem"), node=node)
    return CatalogWriter(target, log, node=node)


def _check(writer: CatalogWriter) -> list[tuple[str, int]]:
    """What the node's minute check (and `audit verify`) finds open: (kind, seq) each."""
    assert writer.audit_log is not None
    report = Verifier(writer.audit_log, writer.audit_chain.head).check()
    return [(str(p.kind), p.seq) for p in report.open]


def test_two_nodes_with_their_own_audit_files_each_keep_a_whole_chain(
    catalog_target: db.Target, tmp_path: Path
) -> None:
    """Two nodes on one catalog, each appending to its own audit file (as on two machines):
    holds added by each, in turn, leave each file one whole chain from seq 1 that verifies
    against that node's head, and checkpoints sign each node's own end; a cut of b's file is
    found by b's check while a's stays clean."""
    writers = {n: _node_writer(catalog_target, tmp_path / n, n) for n in ("a", "b")}
    for i in range(4):
        for node, writer in writers.items():
            writer.holds.add(NewHold(T0, T0 + 1000, None, f"{node} {i}", node, ()), T0 + i)
    for node, writer in writers.items():
        assert writer.audit_log is not None
        records = list(writer.audit_log.records())
        assert [r["seq"] for r in records] == [1, 2, 3, 4], node
        assert [r["details"]["reason"] for r in records] == [f"{node} {i}" for i in range(4)]
        signed = writer.audit_chain.checkpoint(CheckpointKind.STOP, T0 + 10)
        assert signed is not None and signed.seq == 4, node
        assert _check(writer) == [], node
    log_b = tmp_path / "b" / "audit.jsonl"
    lines = log_b.read_bytes().splitlines(keepends=True)
    log_b.write_bytes(b"".join(lines[:2]))  # b's records 3 and 4 cut off
    assert _check(writers["b"]) == [("tail_cut", 3)]
    assert _check(writers["a"]) == []
    for writer in writers.values():
        writer.close()


def test_the_head_from_before_nodes_is_adopted_once_by_the_first_node(
    catalog_target: db.Target, tmp_path: Path
) -> None:
    """The one box's chain (written before nodes, no node) goes on as the first node's: its
    file is checked against the old head, so a cut made across the upgrade is found; a node
    that comes later starts its own chain, and so does a writer that is no node."""
    legacy = _node_writer(catalog_target, tmp_path / "a", None)
    for i in range(3):
        legacy.holds.add(NewHold(T0, T0 + 1000, None, f"old {i}", "ann", ()), T0 + i)
    legacy.close()
    first = _node_writer(catalog_target, tmp_path / "a", "a")
    assert first.audit_chain.head() is not None and first.audit_chain.head().seq == 3
    first.holds.add(NewHold(T0, T0 + 1000, None, "a 3", "ann", ()), T0 + 3)
    assert first.audit_chain.head().seq == 4 and _check(first) == []
    later = _node_writer(catalog_target, tmp_path / "b", "b")
    assert later.audit_chain.head() is None  # a's now, never taken twice
    later.holds.add(NewHold(T0, T0 + 1000, None, "b 0", "bob", ()), T0 + 4)
    assert later.audit_chain.head().seq == 1 and _check(later) == []
    tool = _node_writer(catalog_target, tmp_path / "tool", None)
    assert tool.audit_chain.head() is None
    log_a = tmp_path / "a" / "audit.jsonl"
    log_a.write_bytes(b"".join(log_a.read_bytes().splitlines(keepends=True)[:2]))
    assert _check(first) == [("tail_cut", 3)]
    for writer in (first, later, tool):
        writer.close()


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL 15 is not installed")
def test_a_lost_postgresql_connection_is_busy_once_then_opened_again(tmp_path: Path) -> None:
    """The server restarts under a writer: a reader is opened again before it is used; the
    write that meets the dead connection fails as busy (exit 5 / HTTP 503, nothing
    half-written), the next one reconnects and commits."""
    server = PostgresServer()  # its own: the shared server must not restart under others
    try:
        server.start()
        server.create_role(APP_ROLE, secrets.token_urlsafe(12))
        url = server.create_database("cat", owner=APP_ROLE)
        writer = CatalogWriter(
            pg_catalog(server, url, tmp_path), AuditLog(tmp_path / "audit.jsonl")
        )
        hold = NewHold(T0, T0 + 1000, None, "before", "cli:ann", ())
        writer.holds.add(hold, T0)
        with writer.reader() as first, writer.reader() as again:
            assert first is again, "a thread keeps its read-only connection"
        server.restart()
        with writer.reader() as conn:  # the dropped reader is replaced before it is used
            assert conn is not first and len(holds.listing(conn, T0)) == 1
        with pytest.raises(Busy, match="catalog unreachable"):
            writer.holds.add(replace(hold, reason="during"), T0)
        assert writer.last_error is not None
        writer.holds.add(replace(hold, reason="after"), T0)
        assert writer.last_error is None
        with writer.reader() as conn:
            assert [h["reason"] for h in holds.listing(conn, T0)] == ["before", "after"]
        assert [r["object"] for r in writer.audit_log.records()] == ["hold:1", "hold:2"]
        writer.close()
    finally:
        server.close()


def _open(target: db.Target, start: Any) -> None:
    start.wait(60)
    CatalogWriter(target).close()


def test_two_nodes_starting_at_once_migrate_a_new_catalog_once(catalog_target: db.Target) -> None:
    """Both create the schema at the same moment: one migrates under the write lock, the other
    finds it done (no "table exists" error, one catalog id)."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_open, args=(catalog_target, start)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
        assert p.exitcode == 0
    writer = CatalogWriter(catalog_target)
    with writer.reader() as conn:
        ids = conn.execute("SELECT value FROM meta WHERE key = 'catalog_id'").fetchall()
        assert [r[0] for r in ids] == [writer.catalog_id]
    writer.close()
