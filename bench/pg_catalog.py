"""Benchmark: the catalog on PostgreSQL 15 — 1-hour range query p99 on 8.4 M segments, and the
ingest commit p99 (issue 16, item 5; the SQLite figures are bench/query.py's and bench/ingest.py's).

What it measures
    1. Range query: ``catalog.queries.segments_in_range(conn, camera, from_ms, to_ms)`` — the
       query behind "camera X between T and T+1h" — through ccvault's own PostgreSQL reader
       (``db.connect(target, readonly=True)``: psycopg 3, a read-only session, over TCP to
       127.0.0.1 with a password role), on the same shape as bench/query.py: 16 cameras x
       525,600 contiguous one-minute segments = 8,409,600 rows. Each sample is one whole
       call (camera lookup, range query, ``Segment`` objects), checked (60 or 61 contiguous
       segments of that camera). 200 untimed warm-up calls first: the steady state of a node
       that queries its catalog. Target: p99 <= 10 ms.
    2. Ingest commit: ``CatalogWriter.segments.add`` of a new one-minute segment (the whole
       transaction a stored segment costs: catalog-id check, BEGIN, the site-wide advisory
       lock, camera and volume lookup, INSERT ... RETURNING with its usage trigger, the
       camera's max length, COMMIT with fsync on), N in a row on the 8.4 M-row table.
       Target: p99 <= 20 ms.

How
    A PostgreSQL 15 cluster of its own (tests/peers/postgres.py: initdb in a temp dir,
    fsync ON, shared_buffers 512MB), the schema made by ccvault (``CatalogWriter``: its
    migrations), then the rows generated server-side (``generate_series``, indexes and the
    usage trigger set aside during the fill and rebuilt after, then ANALYZE). Nothing is
    cached between runs (the build takes a few minutes of both cores).

Run: ``.venv/bin/python bench/pg_catalog.py [--quick] [--days D] [--windows N] [--commits N]``.
Prints the load average before and after: a figure taken on a busy machine says so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import ccvault_version  # bench/common.py  # noqa: E402

from ccvault.catalog import db, queries  # noqa: E402
from ccvault.catalog.rows import MediaInfo, NewSegment  # noqa: E402
from ccvault.catalog.writer import CatalogWriter  # noqa: E402
from tests.peers.postgres import PostgresServer  # noqa: E402

CAMERAS = 16
DAYS = 365
SEGMENT_MS = 60_000
PER_CAMERA = DAYS * 24 * 60
TOTAL_ROWS = CAMERAS * PER_CAMERA
YEAR_START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
YEAR_END_MS = YEAR_START_MS + DAYS * 86_400_000
WINDOW_MS = 3_600_000
QUERY_P99_MS = 10.0
COMMIT_P99_MS = 20.0
ROLE = "ccvault"

FILL = """
INSERT INTO segments (camera_id, volume_id, start_ms, end_ms, path, bytes, sha256, codec,
                      width, height, frames, origin, state, ingested_ms, analysis, activity)
SELECT c, 1, {start} + n * {seg}, {start} + (n + 1) * {seg},
       'cam' || lpad(c::text, 2, '0') || '/' || n || '_{seg}.mp4',
       22000000 + (n % 997) * 1000, md5(c || ':' || n) || md5(n || ':' || c), 'h264',
       1920, 1080, 900, 'recorded', 'ok', {start} + (n + 1) * {seg} + 1500, 1, 0
FROM generate_series(1, {cameras}) AS c, generate_series(0::bigint, {last}) AS n
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def build(server: PostgresServer, target: db.PgCatalog, days: int) -> float:
    """ccvault's schema, then 8.4 M rows generated in the server; seconds taken."""
    t0 = time.perf_counter()
    writer = CatalogWriter(target)  # creates the schema: ccvault's migrations
    writer.volumes.register("hot", "bench-volume", YEAR_START_MS)
    writer.cameras.ensure(f"cam{i:02d}" for i in range(1, CAMERAS + 1))
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
        fill = FILL.format(
            start=YEAR_START_MS, seg=SEGMENT_MS, cameras=CAMERAS, last=days * 1440 - 1
        )
        admin.execute(fill)
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


def time_queries(target: db.PgCatalog, rng: random.Random, n: int, days: int) -> list[float]:
    conn = db.connect(target, readonly=True)
    windows = []
    for _ in range(200 + n):
        cam = f"cam{rng.randint(1, CAMERAS):02d}"
        lo = rng.randrange(YEAR_START_MS, YEAR_START_MS + days * 86_400_000 - WINDOW_MS)
        windows.append((cam, lo, lo + WINDOW_MS))
    out = []
    for i, (cam, lo, hi) in enumerate(windows):
        t = time.perf_counter_ns()
        segs = queries.segments_in_range(conn, cam, lo, hi)
        elapsed = (time.perf_counter_ns() - t) / 1e6
        expected = 60 if (lo - YEAR_START_MS) % SEGMENT_MS == 0 else 61
        if len(segs) != expected or segs[0].start_ms > lo or segs[-1].end_ms < hi:
            raise SystemExit(f"wrong result for {cam} [{lo}, {hi}): {len(segs)} segments")
        if i >= 200:
            out.append(elapsed)
    conn.close()
    return out


def time_commits(target: db.PgCatalog, n: int) -> list[float]:
    writer = CatalogWriter(target)
    media = MediaInfo(SEGMENT_MS, "h264", 1920, 1080, 900, 30)
    out = []
    for i in range(n):
        start = YEAR_END_MS + i * SEGMENT_MS
        seg = NewSegment(
            "cam01", "hot", start, start + SEGMENT_MS, f"cam01/new/{start}.mp4",
            22_000_000, secrets.token_hex(32), media, "recorded",
        )  # fmt: skip
        t = time.perf_counter_ns()
        if writer.segments.add(seg, start + SEGMENT_MS + 1500) is None:
            raise SystemExit("a new segment was not stored")
        out.append((time.perf_counter_ns() - t) / 1e6)
    writer.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--commits", type=int, default=500)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--days", type=int, default=DAYS, help="days of footage per camera")
    ap.add_argument("--quick", action="store_true", help="smoke run: 7 days, fewer samples")
    args = ap.parse_args()
    if args.quick:
        args.days, args.windows, args.commits = 7, 300, 100
    print(f"load average before: {load()}", flush=True)
    server = PostgresServer(settings={"shared_buffers": "512MB", "max_wal_size": "8GB"})
    work = Path(tempfile.mkdtemp(prefix="ccvault-bench-pg-"))
    try:
        server.start()
        server.create_role(ROLE, secrets.token_urlsafe(18))
        url = server.create_database("catalog", owner=ROLE)
        passfile = server.write_passfile(work / "pgpass", ROLE)
        target = db.PgCatalog(server.url(ROLE, "catalog", password=False), password_file=passfile)
        print(
            f"building {CAMERAS * args.days * 1440:,} rows in PostgreSQL ({url.split('@')[1]}) ...",
            flush=True,
        )
        built = build(server, target, args.days)
        print(f"built in {built:.0f} s; load average {load()}", flush=True)
        q = time_queries(target, random.Random(args.seed), args.windows, args.days)
        c = time_commits(target, args.commits)
        result = {
            "bench": "pg_catalog",
            "ccvault": ccvault_version(),
            "rows": CAMERAS * args.days * 1440,
            "query_ms": {
                "n": len(q),
                "p50": round(statistics.median(q), 2),
                "p99": round(pct(q, 0.99), 2),
                "max": round(max(q), 2),
            },
            "commit_ms": {
                "n": len(c),
                "p50": round(statistics.median(c), 2),
                "p99": round(pct(c, 0.99), 2),
                "max": round(max(c), 2),
            },
            "load_after": load(),
        }
        ok_q = result["query_ms"]["p99"] <= QUERY_P99_MS
        ok_c = result["commit_ms"]["p99"] <= COMMIT_P99_MS
        print(f"query p99 {'PASS' if ok_q else 'FAIL'} (<= {QUERY_P99_MS} ms), "
              f"commit p99 {'PASS' if ok_c else 'FAIL'} (<= {COMMIT_P99_MS} ms)")  # fmt: skip
        print(json.dumps(result))
    finally:
        server.close()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
