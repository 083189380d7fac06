"""Benchmark: the search API on an 8.4 M-segment catalog — GET /api/segments and /api/timeline.

What it measures
    The latency of two HTTP API requests, served in-process, on a catalog of 16 cameras x 365
    days of 1-minute segments (8,409,600 rows) with ~140 k motion spans:
    - ``GET /api/segments?camera&from&to`` for random 1-hour windows on random cameras — the
      whole request: bearer-token check, camera and time validation, the capped range query,
      the response models, JSON, and the ``search.segments`` audit record (an fsynced append
      inside a catalog write transaction). Target: p99 <= 10 ms.
    - ``GET /api/timeline?camera&date`` for random local days (Europe/Berlin; the 23- and
      25-hour DST days of 2024 always included): per-minute coverage of ~1,440 segments,
      gaps, motion minutes, holds. Target: <= 50 ms, p99 and max.

How
    1. The catalog: bench/query.py's cached ``bench/out/catalog-8m.sqlite`` (built by
       importing its builder when missing), copied with SQLite's backup API to
       ``bench/out/search-8m.sqlite`` (cached; ``--rebuild`` redoes it), opened once with
       ``CatalogWriter`` (which migrates it to the current schema), then given motion spans
       (raw SQL, one transaction): per camera and hour one span of 5-60 s at a random offset
       (16 x 8,760 = 140,160 spans; ``max_span_ms`` set as ccvault maintains it) and two holds.
    2. The app: ``ccvault.api.app.create_app(ApiContext(...))`` — the daemon's own app — with
       a config naming the 16 cameras, zone Europe/Berlin, and the audit log in
       ``bench/out/search-run/``. A viewer user is added (``users.add``) and revoked at the end.
    3. Requests: the figure the issue names — "in-process handler + serialisation + its
       audit record" — calls the route handlers themselves (`find_segments`,
       `day_timeline`: query, JSON body, audit append with its fsync). For reference the same
       requests then go to the app called as an ASGI application in one asyncio loop, the way
       uvicorn calls it — routing, the bearer-token dependency and the handler in the
       threadpool, the response — without sockets and HTTP parsing. The same
       requests then go through ``fastapi.testclient.TestClient`` (n/3, for reference: it adds
       the test client's own thread hand-offs). Each sample is one request timed with
       ``perf_counter_ns``; status and result are checked afterwards (60-61 segments of the
       right camera; 1380/1440/1500 minutes with coverage summing to the day, no gaps). The
       catalog file is read once first (page cache warm, as on a host serving its catalog),
       then 100 untimed warm-up requests per driver.
    4. The audit log is checked at the end: one ``search.segments`` record per request.

Run: ``.venv/bin/python bench/search.py [--quick] [--rebuild] [--requests N] [--days N]``.
``--quick``: 300 segment requests and 40 timelines (the catalog is still the full 8.4 M rows).
The process's CPU time per request is printed too: on a busy host, latency also measures the
other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from common import cached_catalog_matches, ccvault_version, remove_work  # bench/common.py

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
PREPARED = OUT / "search-8m.sqlite"
WORK = OUT / "search-run"
PREP_SPEC = "bench-search v1: query.py catalog + 1 motion span per camera-hour + 2 holds"
ZONE = "Europe/Berlin"
TARGET_SEGMENTS_P99_MS = 10.0
TARGET_TIMELINE_MS = 50.0
DST_DAYS = (date(2024, 3, 31), date(2024, 10, 27))  # 23 and 25 hours in Berlin


def prepare_catalog(seed: int) -> float:
    """Copy query.py's catalog, migrate it through CatalogWriter, add spans and holds."""
    import query  # bench/query.py: its builder and cache

    from ccvault.catalog.writer import CatalogWriter

    t0 = time.perf_counter()
    tmp = PREPARED.with_name(PREPARED.name + ".building")
    query.remove_db(PREPARED)
    query.copy_catalog(tmp, seed)
    print(f"  {time.perf_counter() - t0:.0f} s; migrating with CatalogWriter ...", flush=True)
    writer = CatalogWriter(tmp)
    print(f"  {time.perf_counter() - t0:.0f} s; adding motion spans ...", flush=True)
    rng = random.Random(seed)
    hours = query.DAYS * 24
    with writer.transaction() as conn:
        longest = 0
        for cam in range(1, query.CAMERAS + 1):
            rows = []
            for h in range(hours):
                start = query.YEAR_START_MS + h * 3_600_000 + rng.randrange(3_500_000)
                length = rng.randrange(5_000, 60_000)
                longest = max(longest, length)
                rows.append((cam, start, start + length, rng.random(), rng.random() / 2, "motion"))
            conn.executemany(
                "INSERT INTO motion_spans (camera_id, start_ms, end_ms, peak, area, kind,"
                " x0, y0, x1, y1) VALUES (?, ?, ?, ?, ?, ?, 0.1, 0.1, 0.6, 0.6)",
                rows,
            )
        conn.execute("UPDATE cameras SET max_span_ms = ?", (longest,))
        conn.execute("INSERT INTO meta (key, value) VALUES ('bench_search', ?)", (PREP_SPEC,))
    query.add_bench_holds(writer)
    writer.close()
    query.publish(tmp, PREPARED)
    return time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile: a value that was actually observed."""
    ordered = sorted(values)
    return ordered[max(1, -(-len(ordered) * p // 100)) - 1]


def summary(values: list[float]) -> dict[str, float | int]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50), 3),
        "p95_ms": round(pct(values, 95), 3),
        "p99_ms": round(pct(values, 99), 3),
        "max_ms": round(max(values), 3),
        "mean_ms": round(sum(values) / len(values), 3),
    }


def show(label: str, s: dict[str, float | int]) -> None:
    print(
        f"  {label:<34} n={s['n']:<5} p50 {s['p50_ms']:8.3f}  p95 {s['p95_ms']:8.3f}  "
        f"p99 {s['p99_ms']:8.3f}  max {s['max_ms']:8.3f}  mean {s['mean_ms']:8.3f} ms"
    )


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    ap.add_argument("--rebuild", action="store_true", help="prepare the catalog copy again")
    ap.add_argument("--requests", type=int, default=None, help="timed /api/segments requests")
    ap.add_argument("--days", type=int, default=None, help="timed /api/timeline requests")
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--keep", action="store_true", help=f"keep {WORK} (the audit log)")
    args = ap.parse_args(argv)
    n_seg = args.requests or (300 if args.quick else 3000)
    n_day = args.days or (40 if args.quick else 300)

    import query  # bench/query.py: the catalog's shape

    with warnings.catch_warnings():  # "install httpx2": the reference pass works as it is
        warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)
        from fastapi.testclient import TestClient

    from ccvault.api import routes_footage, users
    from ccvault.api.app import create_app
    from ccvault.api.auth import Principal
    from ccvault.api.context import ApiContext
    from ccvault.catalog.audit import audit_log
    from ccvault.catalog.writer import CatalogWriter
    from ccvault.config.model import Config
    from ccvault.host.clock import SystemClock

    print(
        f"bench/search.py — GET /api/segments and /api/timeline in-process on "
        f"{query.TOTAL_ROWS:,} segments"
    )
    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    version = ccvault_version()
    print(f"ccvault source: {version}")
    prep_s = None
    if args.rebuild or not cached_catalog_matches(PREPARED, "bench_search", PREP_SPEC):
        prep_s = prepare_catalog(args.seed)
        print(f"catalog prepared in {prep_s:.0f} s")
    else:
        print(f"using cached catalog {PREPARED} (--rebuild to prepare it again)")

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    config = Config.model_validate(
        {
            "timezone": ZONE,
            "storage": {
                "catalog": str(PREPARED),
                "volumes": [{"name": "hot", "path": str(WORK / "hot")}],
            },
            "audit": {"path": str(WORK / "audit.jsonl")},
            "cameras": [
                {"name": query.camera_name(i), "url": "demo://"}
                for i in range(1, query.CAMERAS + 1)
            ],
        }
    )
    clock = SystemClock()
    writer = CatalogWriter(PREPARED, audit_log(config))  # migrates a stale copy too
    with writer.reader() as conn:
        rows = conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
        spans = conn.execute("SELECT COUNT(*) FROM motion_spans").fetchone()[0]
        schema = conn.execute("PRAGMA user_version").fetchone()[0]
    print(
        f"catalog: {rows:,} segments, {spans:,} motion spans, schema version {schema}, "
        f"{PREPARED.stat().st_size / 2**30:.2f} GiB; audit log {config.audit_path}"
    )
    t_read = time.perf_counter()
    with open(PREPARED, "rb") as f:  # the page cache warm, as on a host serving its catalog
        while f.read(1 << 24):
            pass
    print(
        f"catalog read into the page cache in {time.perf_counter() - t_read:.1f} s "
        f"({query.mib(query.cached_bytes(PREPARED))} cached)"
    )
    viewer = f"bench-viewer-{os.getpid()}"
    token = users.add(writer, viewer, "viewer", None, "bench", clock.wall_ms())
    app = create_app(ApiContext(config, writer, clock, lambda: []))
    asgi = AsgiDriver(app, token)
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    client.__enter__()  # one event loop for the run (else TestClient starts one per request)

    def via_testclient(url: str, params: dict[str, str]) -> tuple[int, bytes]:
        resp = client.get(url, params=params)
        return resp.status_code, resp.content

    rng = random.Random(args.seed + 7)
    first, last = date(2024, 1, 2), date(2024, 12, 29)  # whole local days inside the year
    days = list(DST_DAYS) + [
        first + timedelta(days=rng.randrange((last - first).days))
        for _ in range(n_day - len(DST_DAYS))
    ]
    searches = 0

    def run(get: Getter, n_s: int, n_d: int) -> tuple[dict, dict, float, float, set[int]]:
        nonlocal searches
        for _ in range(100):  # warm-up: imports, the threadpool, SQLite's cache
            timed(get, "/api/segments", window(rng))
        for day in days[:10]:
            timed(get, "/api/timeline", {"camera": "cam01", "date": day.isoformat()})
        searches += 100
        seg_ms, day_ms, minutes_seen = [], [], set()
        cpu = time.process_time()
        for _ in range(n_s):
            params = window(rng)
            elapsed, found = timed(get, "/api/segments", params)
            seg_ms.append(elapsed)
            if len(found) not in (60, 61) or {s["camera"] for s in found} != {params["camera"]}:
                raise SystemExit(f"wrong result for {params}: {len(found)} segments")
        searches += n_s
        cpu_seg = (time.process_time() - cpu) / n_s * 1000
        cpu = time.process_time()
        for day in days[:n_d]:
            params = {
                "camera": query.camera_name(rng.randint(1, query.CAMERAS)),
                "date": day.isoformat(),
            }
            elapsed, t = timed(get, "/api/timeline", params)
            day_ms.append(elapsed)
            check_timeline(day, params, t)
            minutes_seen.add(t["minutes"])
        cpu_day = (time.process_time() - cpu) / n_d * 1000
        return summary(seg_ms), summary(day_ms), cpu_seg, cpu_day, minutes_seen

    ctx = app.state.ctx
    who = Principal(viewer, "viewer", "bench-session")

    def via_handler(url: str, params: dict[str, str]) -> tuple[int, bytes]:
        """What the issue measures: the handler, its serialisation and its audit record,
        called in-process (no ASGI stack, no authentication)."""
        if url == "/api/segments":
            resp = routes_footage.find_segments(
                ctx, who, params["camera"], params["from"], params["to"], False
            )
        else:
            resp = routes_footage.day_timeline(ctx, who, params["camera"], params["date"])
        return resp.status_code, bytes(resp.body)

    load_before = os.getloadavg()[0]
    h_seg, h_day, cpu_seg, cpu_day, minutes_seen = run(via_handler, n_seg, n_day)
    s_seg, s_day, cpu_app_seg, cpu_app_day, _ = run(asgi.get, n_seg, n_day)
    t_seg, t_day, _, _, _ = run(via_testclient, n_seg // 3, n_day // 3)
    load_after = os.getloadavg()[0]
    audited = sum(
        1
        for r in audit_log(config).records()
        if r["action"] == "search.segments" and r["actor"] == f"api:{viewer}"
    )
    users.revoke(writer, viewer, "bench", clock.wall_ms())
    client.__exit__(None, None, None)
    asgi.close()
    writer.close()
    remove_work(WORK, args.keep)

    print(
        "GET /api/segments, random 1-hour windows, random cameras (60-61 segments each; "
        "one search.segments audit record each):"
    )
    show("handler + serialisation + audit (the figure)", h_seg)
    show("whole app called as ASGI, with auth", s_seg)
    show("through TestClient (reference)", t_seg)
    print(f"  CPU per request: handler {cpu_seg:.2f} ms, whole app {cpu_app_seg:.2f} ms")
    print(
        f"GET /api/timeline, random local days in {ZONE} (day lengths seen: "
        f"{sorted(minutes_seen)} minutes; ~1,440 segments and ~24 spans each):"
    )
    show("handler + serialisation (the figure)", h_day)
    show("whole app called as ASGI, with auth", s_day)
    show("through TestClient (reference)", t_day)
    print(f"  CPU per request: handler {cpu_day:.2f} ms, whole app {cpu_app_day:.2f} ms")
    print(
        f"1-minute load average: {load_before:.2f} before the timed requests, "
        f"{load_after:.2f} after ({os.cpu_count()} CPUs; other processes add queueing)"
    )
    print(f"audit: {audited:,} search.segments records for {searches:,} searches")
    seg_ok = h_seg["p99_ms"] <= TARGET_SEGMENTS_P99_MS and audited == searches
    day_ok = h_day["max_ms"] <= TARGET_TIMELINE_MS
    print(
        f"RESULT: segments p99 {h_seg['p99_ms']:.3f} ms vs <= {TARGET_SEGMENTS_P99_MS} ms: "
        f"{'PASS' if seg_ok else 'FAIL'} (whole app: p99 {s_seg['p99_ms']:.3f} ms); "
        f"timeline p99 {h_day['p99_ms']:.3f} ms, max {h_day['max_ms']:.3f} ms vs <= "
        f"{TARGET_TIMELINE_MS} ms: {'PASS' if day_ok else 'FAIL'} (whole app: max "
        f"{s_day['max_ms']:.3f} ms)"
    )
    print(
        json.dumps(
            {
                "bench": "search",
                "ccvault": version,
                "quick": args.quick,
                "rows": rows,
                "spans": spans,
                "prepare_s": round(prep_s, 1) if prep_s is not None else None,
                "how": "in-process: the route handlers called directly (the figure); "
                "create_app(ctx) called as an ASGI app in one asyncio loop and TestClient "
                "for reference",
                "segments": h_seg,
                "timeline": h_day,
                "app": {"segments": s_seg, "timeline": s_day},
                "testclient": {"segments": t_seg, "timeline": t_day},
                "cpu_ms_per_request": {
                    "segments": round(cpu_seg, 3),
                    "timeline": round(cpu_day, 3),
                    "app_segments": round(cpu_app_seg, 3),
                    "app_timeline": round(cpu_app_day, 3),
                },
                "load_average": [round(load_before, 2), round(load_after, 2)],
                "audit_records": audited,
                "searches": searches,
                "target_segments_p99_ms": TARGET_SEGMENTS_P99_MS,
                "target_timeline_ms": TARGET_TIMELINE_MS,
                "pass": seg_ok and day_ok,
            }
        )
    )
    return 0 if seg_ok and day_ok else 1


Getter = Callable[[str, dict[str, str]], tuple[int, bytes]]


class AsgiDriver:
    """Calls the app the way uvicorn does (one event loop; a sync handler in the threadpool),
    minus sockets and HTTP parsing."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.loop = app, asyncio.new_event_loop()
        self.headers = [(b"authorization", f"Bearer {token}".encode()), (b"host", b"bench")]

    def get(self, url: str, params: dict[str, str]) -> tuple[int, bytes]:
        return self.loop.run_until_complete(self._get(url, params))

    async def _get(self, url: str, params: dict[str, str]) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": url,
            "raw_path": url.encode(),
            "root_path": "",
            "query_string": urlencode(params).encode(),
            "headers": self.headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8750),
            "state": {},
        }
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    def close(self) -> None:
        self.loop.close()


def window(rng: random.Random) -> dict[str, str]:
    import query  # bench/query.py

    cam = query.camera_name(rng.randint(1, query.CAMERAS))
    start = rng.randrange(query.YEAR_START_MS, query.YEAR_END_MS - query.WINDOW_MS)
    return {"camera": cam, "from": iso(start), "to": iso(start + query.WINDOW_MS)}


def timed(get: Getter, url: str, params: dict[str, str]) -> tuple[float, Any]:
    t = time.perf_counter_ns()
    status, body = get(url, params)
    elapsed = (time.perf_counter_ns() - t) / 1e6
    if status != 200:
        raise SystemExit(f"{url} {params}: {status} {body[:300]!r}")
    return elapsed, json.loads(body)


def check_timeline(day: date, params: dict[str, str], t: dict) -> None:
    expected = {date(2024, 3, 31): 1380, date(2024, 10, 27): 1500}.get(day, 1440)
    covered = round(sum(t["coverage"]))
    if (
        t["minutes"] != expected
        or covered != expected
        or t["gaps"]
        or not 0 < t["motion_count"] <= 26
    ):
        raise SystemExit(
            f"wrong timeline for {params}: {t['minutes']} minutes, "
            f"{covered} covered, {len(t['gaps'])} gaps"
        )


if __name__ == "__main__":
    sys.exit(main())
