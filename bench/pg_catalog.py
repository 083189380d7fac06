"""Benchmark: the catalog on PostgreSQL 15 beside SQLite, in the same run — 1-hour range query
p99 on 8.4 M segments, the routine retention pass, and the ingest commit p99 (issue 16, item 5).

What it measures, on each engine
    1. Range query: ``catalog.queries.segments_in_range(conn, camera, from_ms, to_ms)`` — the
       query behind "camera X between T and T+1h" — on bench/query.py's shape: 16 cameras x
       525,600 contiguous one-minute segments = 8,409,600 rows, through ccvault's own reader
       (``db.connect(target, readonly=True)``; on PostgreSQL psycopg 3, a read-only session,
       over TCP to 127.0.0.1 with a password role). bench/query.py's ``random_windows`` and
       ``time_calls``: each sample one whole call (camera lookup, range query, ``Segment``
       objects), checked (60 or 61 contiguous segments of that camera); 200 untimed warm-up
       calls first (the steady state of a node that queries its catalog). Goal: p99 <= 10 ms.
    2. Routine retention pass: bench/retention.py's ``child_plan`` (``plan_pass``, every batch
       consumed, no file I/O, R passes in a fresh subprocess) on the catalog in
       bench/retention.py's steady state: 20 % activity, what the previous pass deleted gone
       (``make_steady_state``), its two holds, its policy, "now" 366 days and 4.5 minutes
       after the first segment (~80 segments due). Goal: the slowest pass <= 1 s.
    3. Ingest commit: ``CatalogWriter.segments.add`` of a new one-minute segment (the whole
       transaction a stored segment costs: catalog-id check, BEGIN, on PostgreSQL the
       site-wide advisory lock, camera and volume lookup, INSERT ... RETURNING, the usage
       trigger, the camera's max length, COMMIT with fsync on), N in a row on that
       steady-state catalog. Goal: p99 <= 20 ms.

How
    SQLite: bench/query.py's cached ``bench/out/catalog-8m.sqlite`` for the query,
    bench/retention.py's cached ``bench/out/retention-8m.sqlite`` for the pass and the commits
    (each built by its own script's code when missing); the segments the commits add are
    deleted afterwards (and before, if an interrupted run left some), so the cache stays as
    specified. PostgreSQL: a cluster of its own (tests/peers/postgres.py: initdb in a temp
    dir, fsync ON, shared_buffers 512MB), the schema made by ccvault (``CatalogWriter``: its
    migrations), the rows generated server-side (``generate_series``, analysed, with
    retention.py's activity; indexes and the usage trigger set aside during the fill and
    rebuilt after, then ANALYZE); the query is timed on all the rows, then the steady state
    is made for the pass and the commits. The built cluster (~10 minutes of both cores) is
    saved, cleanly shut down, as ``bench/out/pg-catalog-<days>d/data``; a later run starts
    on a copy of it (the saved one is never written; ccvault's migrations bring a copy saved
    by an older ccvault up to date), so only the first run pays for the build
    (``--rebuild`` builds again). SQLite runs first, then PostgreSQL, never both at once.

Run: ``.venv/bin/python bench/pg_catalog.py [--quick] [--days D] [--windows N] [--commits N]
[--rebuild]``.
``--quick``: PostgreSQL with 7 days per camera, 300 windows, 100 commits, 3 passes (SQLite's
catalogs stay the cached full-size ones). Prints the load average before and after: a figure
taken on a busy machine says so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import query  # bench/query.py  # noqa: E402
import retention  # bench/retention.py  # noqa: E402
from common import ccvault_version  # bench/common.py  # noqa: E402

from ccvault.catalog import db  # noqa: E402
from ccvault.catalog.rows import MediaInfo, NewSegment  # noqa: E402
from ccvault.catalog.writer import CatalogWriter  # noqa: E402
from tests.peers.postgres import PostgresServer  # noqa: E402

CAMERAS = query.CAMERAS
SEGMENT_MS = query.SEGMENT_MS
YEAR_START_MS = query.YEAR_START_MS
# figure name -> (the value judged, goal); the same goals for both engines.
GOALS = {"query": ("p99_ms", 10.0), "pass": ("max_ms", 1000.0), "commit": ("p99_ms", 20.0)}
ROLE = "ccvault"
NEW_PREFIX = "cam01/new/"  # the paths of the segments the commit figure adds

FILL = """
INSERT INTO segments (camera_id, volume_id, start_ms, end_ms, path, bytes, sha256, codec,
                      width, height, frames, origin, state, ingested_ms, analysis, activity)
SELECT camera_id, 1, start_ms, start_ms + {seg},
       'cam' || lpad(c::text, 2, '0') || '/' || n || '_{seg}.mp4',
       22000000 + (n % 997) * 1000, md5(c || ':' || n) || md5(n || ':' || c), 'h264',
       1920, 1080, 900, 'recorded', 'ok', start_ms + {seg} + 1500, 1, {activity}
FROM generate_series(1, {cameras}) AS c, generate_series(0::bigint, {last}) AS n,
     LATERAL (SELECT c AS camera_id, {start} + n * {seg} AS start_ms) AS r
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def build(server: PostgresServer, target: db.PgCatalog, days: int) -> float:
    """ccvault's schema, then the rows generated in the server; seconds taken."""
    t0 = time.perf_counter()
    writer = CatalogWriter(target)  # creates the schema: ccvault's migrations
    writer.volumes.register("hot", "bench-volume", YEAR_START_MS)
    writer.cameras.ensure(query.camera_name(i) for i in range(1, CAMERAS + 1))
    writer.close()
    with server.connect(target.url.rsplit("/", 1)[1]) as admin:
        admin.execute("SET maintenance_work_mem = '512MB'")
        indexes = admin.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'segments'"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        ).fetchall()
        for name, _ in indexes:
            admin.execute(f'DROP INDEX "{name}"')
        admin.execute("ALTER TABLE segments DISABLE TRIGGER USER")
        activity = retention.activity_sql(YEAR_START_MS)
        last = days * 1440 - 1
        admin.execute(
            FILL.format(start=YEAR_START_MS, seg=SEGMENT_MS, cameras=CAMERAS, last=last,
                        activity=activity)
        )  # fmt: skip
        admin.execute("ALTER TABLE segments ENABLE TRIGGER USER")
        for _, definition in indexes:
            admin.execute(definition)
        admin.execute(
            "INSERT INTO usage (camera_id, volume_id, segments, bytes) SELECT camera_id,"
            " volume_id, COUNT(*), SUM(bytes) FROM segments GROUP BY 1, 2"
            " ON CONFLICT (camera_id, volume_id) DO UPDATE SET segments = excluded.segments,"
            " bytes = excluded.bytes"
        )
        admin.execute(f"UPDATE cameras SET max_segment_ms = {SEGMENT_MS}")
        admin.execute("VACUUM ANALYZE segments")
        admin.execute("VACUUM ANALYZE")
        rows = admin.execute("SELECT count(*) FROM segments").fetchone()[0]
    if rows != CAMERAS * days * 1440:
        raise SystemExit(f"build failed: {rows} rows, expected {CAMERAS * days * 1440}")
    return time.perf_counter() - t0


def time_queries(target: db.Target, rng: random.Random, n: int, days: int) -> list[float]:
    """bench/query.py's steady state: 200 untimed warm-up windows, then n timed (ms)."""
    conn = db.connect(target, readonly=True)
    try:
        query.time_calls(conn, query.random_windows(rng, 200, days))
        return query.time_calls(conn, query.random_windows(rng, n, days))
    finally:
        conn.close()


def time_pass(cfg: Path, repeats: int, label: str) -> dict[str, Any]:
    """bench/retention.py's routine pass: `repeats` plan_pass runs in a fresh subprocess."""
    res = retention.run_child(
        {"config": str(cfg), "now_ms": retention.pass_now_ms(), "repeats": repeats}
    )
    retention.show_pass(label, res)
    return res


def time_commits(target: db.Target, n: int) -> list[float]:
    """n new one-minute segments of cam01 after the catalogued year, one commit each (ms)."""
    writer = CatalogWriter(target)
    media = MediaInfo(SEGMENT_MS, "h264", 1920, 1080, 900, 30)
    out = []
    try:
        for i in range(n):
            start = query.YEAR_END_MS + i * SEGMENT_MS
            seg = NewSegment(
                "cam01", "hot", start, start + SEGMENT_MS, f"{NEW_PREFIX}{start}.mp4",
                22_000_000, secrets.token_hex(32), media, "recorded",
            )  # fmt: skip
            t = time.perf_counter_ns()
            if writer.segments.add(seg, start + SEGMENT_MS + 1500) is None:
                raise SystemExit("a new segment was not stored")
            out.append((time.perf_counter_ns() - t) / 1e6)
    finally:
        writer.close()
    return out


def remove_new(target: db.Target) -> None:
    """The segments time_commits added go again (the cached SQLite catalog stays as built)."""
    writer = CatalogWriter(target)
    try:
        with writer.transaction() as c:
            c.execute("DELETE FROM segments WHERE path LIKE ?", (NEW_PREFIX + "%",))
    finally:
        writer.close()


def figures(q: list[float], p: dict[str, Any], c: list[float]) -> dict[str, Any]:
    """One engine's three figures, printed and in the JSON's shape (the pass is printed by
    time_pass)."""
    query.show("1-hour segments_in_range", query.summary(q))
    query.show("ingest commit (segments.add)", query.summary(c))
    passes = [t * 1000 for t in p["times_s"]]
    return {
        "query": query.summary(q),
        "pass": {
            "n": len(passes),
            "median_ms": round(statistics.median(passes), 1),
            "max_ms": round(max(passes), 1),
            "deletes": p["actions"].get("delete", 0),
            "peak_rss_mib": round(retention.mib(p["peak_after"]), 1),
        },
        "commit": query.summary(c),
    }


def sqlite_side(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The three figures on SQLite: query.py's and retention.py's cached catalogs."""
    print(f"\n== SQLite == load average {load()}", flush=True)
    query.open_catalog(False, args.seed)
    q = time_queries(query.CATALOG, random.Random(args.seed), args.windows, query.DAYS)
    if not retention.prepared_ok(retention.PREPARED):
        retention.prepare_catalog(args.seed)
    volume = work / "volume-sqlite"
    retention.give_volume_identity(volume)
    cfg = retention.write_pass_config(work / "sqlite.toml", volume, retention.POLICY)
    # Segments left by an interrupted run go first; opening the writer also migrates a
    # catalog cached by an older ccvault, which the pass's read-only plan cannot.
    remove_new(retention.PREPARED)
    p = time_pass(cfg, args.repeats, f"routine pass on {retention.PREPARED.name}")
    try:
        c = time_commits(retention.PREPARED, args.commits)
    finally:
        remove_new(retention.PREPARED)
    return {"rows": query.TOTAL_ROWS, **figures(q, p, c)}


def saved_cluster(days: int) -> Path:
    """Where the cluster built for `days` days per camera is kept between runs."""
    return query.OUT / f"pg-catalog-{days}d" / "data"


def built_cluster(server: PostgresServer, work: Path, args: argparse.Namespace) -> db.PgCatalog:
    """A running cluster holding the built catalog: a copy of the saved one, or built now
    (and saved, then started again) when there is none or `--rebuild` asks."""
    saved = saved_cluster(args.days)
    if args.rebuild:
        shutil.rmtree(saved.parent, ignore_errors=True)
    rows = CAMERAS * args.days * 1440
    if saved.is_dir():
        t0 = time.perf_counter()
        server.copy_data_from(saved)
        server.start()
        server.set_password(ROLE, secrets.token_urlsafe(18))
        print(f"{rows:,} rows: a copy of {saved} ({time.perf_counter() - t0:.0f} s)")
    else:
        server.start()
        server.create_role(ROLE, secrets.token_urlsafe(18))
        server.create_database("catalog", owner=ROLE)
    passfile = server.write_passfile(work / "pgpass", ROLE)
    url = server.url(ROLE, "catalog", password=False)
    target = db.PgCatalog(url, password_file=passfile)
    if not saved.is_dir():
        print(f"building {rows:,} rows in PostgreSQL ({url.split('@')[1]}) ...", flush=True)
        built = build(server, target, args.days)
        print(f"built in {built:.0f} s; load average {load()}", flush=True)
        saved.parent.mkdir(parents=True, exist_ok=True)
        server.save_data_to(saved.with_name("data.part"))
        saved.with_name("data.part").rename(saved)  # whole, or not there at all
        server.start()
        print(f"saved as {saved}; load average {load()}", flush=True)
    return target


def pg_side(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The three figures on PostgreSQL: its own cluster, filled in the server."""
    print(f"\n== PostgreSQL == load average {load()}", flush=True)
    server = PostgresServer(settings={"shared_buffers": "512MB", "max_wal_size": "8GB"})
    rows = CAMERAS * args.days * 1440
    try:
        target = built_cluster(server, work, args)
        url = target.url
        passfile = target.password_file
        q = time_queries(target, random.Random(args.seed), args.windows, args.days)
        writer = CatalogWriter(target)
        gone = retention.make_steady_state(writer)
        writer.close()
        print(f"steady state: {gone:,} segments the previous pass deleted removed, 2 holds")
        volume = work / "volume-pg"
        retention.give_volume_identity(volume, target)
        storage = (
            f'catalog = "{url}"',
            f'catalog_password_file = "{passfile}"',
            f'state_dir = "{work / "state"}"',
        )
        cfg = retention.write_pass_config(work / "pg.toml", volume, retention.POLICY, storage)
        p = time_pass(cfg, args.repeats, "routine pass on PostgreSQL")
        c = time_commits(target, args.commits)
    finally:
        server.close()
    return {"rows": rows, **figures(q, p, c)}


def verdicts(result: dict[str, Any]) -> dict[str, dict[str, bool]]:
    """PASS/FAIL per engine and figure, printed as a table."""
    labels = {
        "query": "1-hour range query p99",
        "pass": "routine retention pass, slowest",
        "commit": "ingest commit p99",
    }
    print(f"\n{'RESULT':<34}{'SQLite':>18}{'PostgreSQL':>18}   goal")
    out: dict[str, dict[str, bool]] = {"sqlite": {}, "postgresql": {}}
    for name, (key, goal) in GOALS.items():
        cells = []
        for engine in out:
            value = result[engine][name][key]
            out[engine][name] = value <= goal
            cells.append(f"{value:9.2f} ms {'PASS' if value <= goal else 'FAIL'}")
        print(f"{labels[name]:<34}{cells[0]:>18}{cells[1]:>18}   <= {goal:g} ms")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--commits", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=7, help="routine passes timed per engine")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--days", type=int, default=query.DAYS, help="PostgreSQL: days per camera")
    ap.add_argument("--quick", action="store_true", help="smoke run: 7 days, fewer samples")
    ap.add_argument("--rebuild", action="store_true", help="PostgreSQL: build, not the saved")
    args = ap.parse_args()
    if args.quick:
        args.days, args.windows, args.commits, args.repeats = 7, 300, 100, 3
    before = load()
    print(f"load average before: {before}", flush=True)
    version = ccvault_version()
    print(f"ccvault source: {version}")
    work = Path(tempfile.mkdtemp(prefix="ccvault-bench-pg-"))
    try:
        result: dict[str, Any] = {"bench": "pg_catalog", "ccvault": version, "quick": args.quick}
        result["sqlite"] = sqlite_side(args, work)
        result["postgresql"] = pg_side(args, work)
    finally:
        shutil.rmtree(work)
    result["goals_ms"] = {name: goal for name, (_, goal) in GOALS.items()}
    result["verdicts"] = verdicts(result)
    result["pass"] = all(all(v.values()) for v in result["verdicts"].values())
    result["load_before"] = before
    result["load_after"] = load()
    print(f"load average after: {result['load_after']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
