"""Benchmark: retention — a routine pass on an 8.4 M-segment catalog, and purging real files.

What it measures
    1. The planning cost of a routine retention pass (``retention.passes.plan_pass``: candidate
       selection by indexed SQL, the planner, the quota and disk-pressure checks; every batch
       consumed, decisions counted, no file I/O) on a catalog of 16 cameras x 365 days of
       1-minute segments (8.4 M rows) in the steady state: the catalog is "in policy" and the
       last pass ran 5 minutes ago, so ~80 segments are due. Wall time, and the peak RSS of the
       whole process that ran it. Targets from the issue: <= 1 s and <= 200 MB. Also, for
       information: a "catch-up" pass (a whole day per camera due, ~23 k deletes planned), the
       same pass with the catalog evicted from the page cache first, and the same catalog with
       `hot_days` left at its default (7) and no archive volume.
    2. Purging 2,000 real 10 MiB segment files with ``ccvault purge`` while ``ccvault run``
       records 4 live RTSP cameras and another process runs 1-hour ``segments_in_range``
       queries: purge rate (files/s) against a bare ``os.unlink`` loop over 2,000 equivalent
       files in the same run (target: >= 80 % of its rate), query latency during the purge
       (target: p99 <= 20 ms), and no recorded segment lost.

How — 1. routine pass
    - The catalog: bench/query.py's cached ``bench/out/catalog-8m.sqlite`` (built by importing
      its builder when missing), copied with SQLite's backup API to
      ``bench/out/retention-8m.sqlite`` (cached; ``--rebuild`` redoes it) and prepared there:
      every segment marked analysed (``analysis = 1``), 20 % of them with activity (runs of 12
      minutes in each hour, at an offset that varies by hour and camera), then opened with
      ``CatalogWriter`` (migrates it to the current schema: retention indexes, ``usage``
      table), then the steady state is made: what the previous pass (5 minutes earlier) would
      have deleted is deleted (raw SQL; the ``usage`` triggers keep the counters right), and
      two holds are added with ``CatalogWriter.add_hold``: cam03's first day and a little more
      (open-ended: a legal request; its expired idle footage stays a candidate every pass) and
      2 hours of every camera in June (dated).
    - Policy (``[retention]``): ``continuous_days = 365``, ``motion_days = max_days = 366``,
      ``min_days = 7``, ``hot_days = 366``; 16 cameras; one hot volume (the catalog's, with
      ccvault's identity file written for it), no archive. "Now" is 366 days and 4.5 minutes
      after the first segment: per camera the last 5 minutes' worth of footage has just
      expired.
    - Each measurement runs in a fresh ``python`` subprocess: it loads the config, opens a
      read-only ``catalog.db.connect`` connection, checks the volume (``volumes.check``), then
      times R complete ``plan_pass`` iterations with ``perf_counter``. Memory: the figure is
      the whole process's peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss`` at the end:
      interpreter, ccvault's imports, SQLite's page cache, the pass), and the growth of that
      peak across the passes; a separate subprocess runs one pass under ``tracemalloc`` for
      the Python-heap peak of the pass alone.

How — 2. purge
    - 2 x 2,000 files of 10 MiB of real bytes (one random buffer written to each: data blocks
      on disk, not sparse) in ``bench/out/retention-run`` (one filesystem), laid out as the
      store lays them out (``<camera>/YYYY/MM/DD/HH/<start>_<dur>.mp4``, 4 cameras x 500
      one-minute segments, 40 days old); ``os.sync()`` after writing. One set is for the
      purge, the other for the bare ``os.unlink`` loop.
    - ``ccvault run`` (``tests.peers.RtspServer`` serving one live 1080p15 ~3 Mbit/s stream,
      as bench/record_cpu.py; cameras cam1..cam4, ``segment_seconds = 2`` so many segments are
      cut and ingested during the purge, ``[motion] enabled = false``) with retention
      ``max_days = motion_days = hot_days = 30``, ``continuous_days = 14``. The CLI purge uses
      the same config file. To avoid a race with the daemon's own retention job (first run
      15 s after start, then every 300 s), the expired files are moved onto the volume and
      catalogued (raw INSERTs in one ``CatalogWriter`` transaction, sha256 of the buffer
      computed once) only after the daemon logged its first ``retention.pass``; the daemon
      log is checked afterwards for any deletion of its own.
    - A query process (a subprocess, so it does not share the GIL with the unlink loop) runs a
      random 1-hour ``segments_in_range`` every 10 ms on a read-only connection (half the
      windows over the expired footage, half over the live last hour), logging the
      CLOCK_MONOTONIC time and latency of each call.
    - Phases, the daemon recording throughout: 10 s of recording only; page cache dropped
      (``sync; echo 3 > /proc/sys/vm/drop_caches``, root only; the catalog is read back in
      after each drop); bare ``os.unlink`` loop over the first half of the baseline files;
      drop; ``ccvault --config CFG purge --json`` as a subprocess; drop; the unlink loop over
      the other half. The purge rate uses ccvault's own timing of the pass (the
      ``retention.pass`` event's ``seconds``: planning + deleting, without the CLI's start-up);
      the subprocess wall time is printed too.
    - Afterwards the daemon gets SIGTERM, and every segment it logged as ``segment.ingested``
      must be in the catalog with its file on disk; each camera's timeline must have no gap
      over 1 s between consecutive recorded segments; recorder restarts are counted; all
      expired rows and files must be gone.
    - ``bench/out/retention-run`` (~42 GB while it runs) is removed at the end (``--keep``).

Run: ``.venv/bin/python bench/retention.py [--quick] [--files N] [--skip-pass|--skip-purge]``.
``--quick``: 3 repeats instead of 7, no hot_days=7 variant, 200 + 200 files, 2 cameras.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import ccvault_version  # bench/common.py

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
PREPARED = OUT / "retention-8m.sqlite"
WORK = OUT / "retention-run"
CCVAULT = REPO / ".venv" / "bin" / "ccvault"

DAY_MS = 86_400_000
MIN_MS = 60_000
PREP_SPEC = "bench-retention v1: analysis=1, 20% activity, steady state at +366d+4.5min, 2 holds"

# -- 1. routine pass ----------------------------------------------------------------------
PASS_TARGET_S = 1.0
PASS_TARGET_MB = 200.0
POLICY = {"continuous_days": 365, "motion_days": 366, "max_days": 366, "min_days": 7,
          "hot_days": 366}
SLICE_MS = 5 * MIN_MS  # the daemon's pass interval (RETENTION_EVERY_S)

# -- 2. purge -----------------------------------------------------------------------------
FILE_BYTES = 10 << 20  # 10 MiB
PURGE_RATIO_TARGET = 0.8
QUERY_P99_TARGET_MS = 20.0
QUERY_EVERY_S = 0.010
GAP_LIMIT_MS = 1000
PURGE_POLICY = {"continuous_days": 14, "motion_days": 30, "max_days": 30, "min_days": 7,
                "hot_days": 30}
EXPIRED_AGE_MS = 40 * DAY_MS
SEGMENT_S = 2
WIDTH, HEIGHT, FPS, KBPS, KEYINT = 1920, 1080, 15, 3000, 30


# =========================================================================================
# helpers


def mib(n: float) -> float:
    return n / 2**20


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): a value that was actually observed."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def drop_page_cache() -> bool:
    """sync, then drop the whole page cache (root only); False when not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def read_back(paths: list[Path]) -> None:
    """Read files into the page cache again (the catalog a running host has cached)."""
    for p in paths:
        with contextlib.suppress(FileNotFoundError), open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def toml_policy(policy: dict[str, float]) -> list[str]:
    return ["[retention]"] + [f"{k} = {v}" for k, v in policy.items()] + [""]


# =========================================================================================
# 1. the routine pass


def year_start_ms() -> int:
    from query import YEAR_START_MS  # bench/query.py

    return YEAR_START_MS


def pass_now_ms() -> int:
    """366 days and 4.5 minutes after the first segment: minutes 0-4 pass max_days."""
    return year_start_ms() + 366 * DAY_MS + SLICE_MS - MIN_MS // 2


def prepared_ok(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'bench_retention'").fetchone()
            return row is not None and row[0] == PREP_SPEC
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def prepare_catalog(seed: int) -> float:
    """Copy query.py's 8.4 M-row catalog and bring it to the steady state; returns seconds."""
    import query  # bench/query.py: its builder and cache

    from ccvault.catalog.rows import NewHold
    from ccvault.catalog.writer import CatalogWriter

    t0 = time.perf_counter()
    if not query.catalog_ready(query.CATALOG):
        print("bench/query.py's catalog is missing: building it (cached) ...", flush=True)
        query.build_catalog(query.CATALOG, seed)
    tmp = PREPARED.with_name(PREPARED.name + ".building")
    remove_db(tmp)
    remove_db(PREPARED)
    print(f"copying {query.CATALOG.name} to {PREPARED.name} (SQLite backup API) ...", flush=True)
    src = sqlite3.connect(f"file:{query.CATALOG}?mode=ro", uri=True)
    dst = sqlite3.connect(tmp)
    src.backup(dst, pages=65536)
    src.close()
    dst.close()
    print(f"  {time.perf_counter() - t0:.0f} s", flush=True)

    ys = query.YEAR_START_MS
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # preparation only
    conn.execute("PRAGMA cache_size = -262144")
    print("marking every segment analysed, 20 % with activity ...", flush=True)
    # Activity in runs: 12 minutes of each hour, starting at an offset that moves with the
    # hour and the camera (20 % exactly).
    conn.execute(
        "UPDATE segments SET analysis = 1, activity = ("
        " ((start_ms - ?) / 60000) % 60 - (((start_ms - ?) / 3600000) * 37 + camera_id * 11)"
        " % 48 BETWEEN 0 AND 11)", (ys, ys))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"  {time.perf_counter() - t0:.0f} s", flush=True)

    print("migrating with CatalogWriter (retention indexes, usage table) ...", flush=True)
    t_mig = time.perf_counter()
    writer = CatalogWriter(tmp)
    mig_s = time.perf_counter() - t_mig
    print(f"  migration {mig_s:.0f} s", flush=True)

    # Steady state: what the pass 5 minutes ago deleted is gone (cam03's held day is kept).
    prev = pass_now_ms() - SLICE_MS
    hold_to = ys + DAY_MS + 10 * MIN_MS
    ms = {k: round(v * DAY_MS) for k, v in POLICY.items()}
    with writer.transaction() as c:
        gone = c.execute(
            "DELETE FROM segments WHERE NOT (camera_id = 3 AND start_ms < ?) AND ("
            " start_ms <= ? OR (activity = 0 AND analysis IN (1, 2) AND end_ms <= ?)"
            " OR (NOT (activity = 0 AND analysis IN (1, 2)) AND end_ms <= ?))",
            (hold_to, prev - ms["max_days"], prev - ms["continuous_days"],
             prev - ms["motion_days"])).rowcount
    print(f"  steady state: {gone:,} segments the previous pass deleted removed", flush=True)
    created = ys + 300 * DAY_MS
    writer.add_hold(NewHold(ys, hold_to, None, "legal request (bench)", "bench", ("cam03",)),
                    created)
    june = int(datetime(2024, 6, 1, 10, tzinfo=UTC).timestamp() * 1000)
    writer.add_hold(NewHold(june, june + 2 * 3_600_000, pass_now_ms() + 30 * DAY_MS,
                            "incident (bench)", "bench", ()), created)
    with writer.transaction() as c:
        c.execute("INSERT INTO meta (key, value) VALUES ('bench_retention', ?)", (PREP_SPEC,))
    writer.close()
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    remove_db(PREPARED)
    os.replace(tmp, PREPARED)
    remove_db(tmp)
    return time.perf_counter() - t0


def write_pass_config(path: Path, volume: Path, policy: dict[str, float]) -> Path:
    lines = ['timezone = "UTC"', "", "[motion]", "enabled = false", "", *toml_policy(policy),
             "[storage]", f'catalog = "{PREPARED}"', "", "[[storage.volumes]]",
             'name = "hot"', f'path = "{volume}"', 'role = "hot"', ""]
    for i in range(1, 17):
        lines += ["[[cameras]]", f'name = "cam{i:02d}"', 'url = "demo://"', ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def give_volume_identity(volume: Path) -> None:
    """The catalog's own volume row and catalog id, so volumes.check() finds it available."""
    from ccvault.catalog import db, queries
    from ccvault.volumes import write_identity

    conn = db.connect(PREPARED, readonly=True)
    try:
        row = queries.volume_rows(conn)["hot"]
        write_identity(volume, row.uuid, queries.catalog_id(conn), "hot")
    finally:
        conn.close()


def child_plan(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh subprocess: `repeats` complete plan_pass iterations."""
    import resource
    import tracemalloc

    import psutil

    from ccvault import config as cfgmod
    from ccvault.catalog import db, queries
    from ccvault.retention import candidates
    from ccvault.retention.passes import plan_pass
    from ccvault.volumes import check

    conf = cfgmod.load(Path(spec["config"])).config
    conn = db.connect(conf.storage.catalog, readonly=True)
    known = queries.volume_rows(conn)
    vols = [check(v, known.get(v.name), queries.catalog_id(conn)) for v in conf.storage.volumes]
    if not all(v.available for v in vols):
        raise SystemExit(f"volume unavailable: {[v.reason for v in vols]}")
    now = spec["now_ms"]
    if spec.get("evict"):
        from query import drop_file_cache  # bench/query.py

        drop_file_cache(conf.storage.catalog)
    proc = psutil.Process()
    rss_before = proc.memory_info().rss
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if spec.get("tracemalloc"):
        tracemalloc.start()
    if spec.get("profile"):
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
    times, actions, rules, batches = [], Counter(), Counter(), 0
    for i in range(spec["repeats"]):
        t = time.perf_counter()
        a: Counter[str] = Counter()
        r: Counter[str] = Counter()
        nb = 0
        for batch in plan_pass(conn, conf, vols, now):
            nb += 1
            for d in batch:
                a[d.action] += 1
                r[d.rule] += 1
        times.append(time.perf_counter() - t)
        if i == 0:
            actions, rules, batches = a, r, nb
    out: dict[str, Any] = {"times_s": times, "actions": dict(actions), "rules": dict(rules),
                           "batches": batches}
    if spec.get("profile"):
        prof.disable()
        import io

        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(18)
        out["profile"] = buf.getvalue()
    if spec.get("tracemalloc"):
        out["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    out["rss_before"] = rss_before
    out["peak_before"] = peak_before
    out["peak_after"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["rss_after"] = proc.memory_info().rss
    # Breakdown (untimed above): candidate rows the routine selection returns.
    if spec.get("breakdown"):
        sc = candidates.scope(conn, conf, {v.name: v.role for v in vols})
        t = time.perf_counter()
        rows = sum(len(b) for b in candidates.routine(conn, sc, now))
        out["routine_candidates"] = rows
        out["routine_select_s"] = time.perf_counter() - t
    conn.close()
    return out


def run_child(spec: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-plan",
                          json.dumps(spec)], capture_output=True, text=True, timeout=timeout,
                         check=False, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"plan subprocess failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def show_pass(label: str, r: dict[str, Any]) -> None:
    times = r["times_s"]
    deletes = r["actions"].get("delete", 0)
    other = {k: v for k, v in r["actions"].items() if k != "delete"}
    print(f"  {label}: {len(times)} passes, first {times[0] * 1000:8.1f} ms, median "
          f"{statistics.median(times) * 1000:8.1f} ms, max {max(times) * 1000:8.1f} ms; "
          f"peak RSS {mib(r['peak_after']):6.1f} MiB (before the passes {mib(r['peak_before']):.1f}"
          f", +{mib(r['peak_after'] - r['peak_before']):.1f}); "
          f"{deletes:,} deletes planned{f', other {other}' if other else ''} "
          f"in {r['batches']} batches; rules {r['rules']}")
    if "routine_candidates" in r:
        print(f"      routine selection alone: {r['routine_candidates']:,} candidate rows in "
              f"{r['routine_select_s'] * 1000:.1f} ms")


def part_pass(args: argparse.Namespace) -> dict[str, Any]:
    prep_s = None
    if args.rebuild or not prepared_ok(PREPARED):
        prep_s = prepare_catalog(args.seed)
        print(f"prepared {PREPARED.name} in {prep_s:.0f} s")
    else:
        print(f"using the prepared catalog {PREPARED} (--rebuild to redo it)")
    conn = sqlite3.connect(f"file:{PREPARED}?mode=ro", uri=True)
    rows = conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
    idle = conn.execute("SELECT COUNT(*) FROM segments INDEXED BY segments_idle"
                        " WHERE activity = 0 AND analysis IN (1, 2)").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    holds = conn.execute("SELECT COUNT(*) FROM holds WHERE released_ms IS NULL").fetchone()[0]
    conn.close()
    size = PREPARED.stat().st_size
    print(f"catalog: {rows:,} segments ({idle / rows:.1%} idle), {size / 2**30:.2f} GiB, "
          f"schema version {version}, {holds} holds")
    volume = WORK / "volume-8m"
    give_volume_identity(volume)
    cfg = write_pass_config(WORK / "pass.toml", volume, POLICY)
    print(f"policy: {POLICY}; 16 cameras, one hot volume, no archive")
    now = pass_now_ms()
    repeats = 3 if args.quick else 7
    res: dict[str, Any] = {}
    print("routine pass (plan_pass, all batches consumed, no file I/O), each in a fresh "
          "subprocess:")
    res["steady"] = run_child({"config": str(cfg), "now_ms": now, "repeats": repeats,
                               "breakdown": True})
    show_pass("steady state (5 min due)", res["steady"])
    res["tracemalloc"] = run_child({"config": str(cfg), "now_ms": now, "repeats": 1,
                                    "tracemalloc": True})
    print(f"  Python heap peak during one pass (tracemalloc): "
          f"{mib(res['tracemalloc']['tracemalloc_peak']):.2f} MiB")
    res["evicted"] = run_child({"config": str(cfg), "now_ms": now, "repeats": 1, "evict": True})
    show_pass("catalog evicted from the page cache first", res["evicted"])
    res["catchup"] = run_child({"config": str(cfg), "now_ms": now + DAY_MS, "repeats": repeats,
                                "breakdown": True})
    show_pass("catch-up (a day per camera due)", res["catchup"])
    if not args.quick and not args.skip_hot_default:
        hot_cfg = write_pass_config(WORK / "pass-hot7.toml", volume, {**POLICY, "hot_days": 7})
        res["hot_days_7"] = run_child({"config": str(hot_cfg), "now_ms": now, "repeats": 1,
                                       "breakdown": True})
        show_pass("same, hot_days = 7 (default), no archive", res["hot_days_7"])
    steady = res["steady"]
    worst = max(steady["times_s"])
    peak = steady["peak_after"]
    ok = worst <= PASS_TARGET_S and mib(peak) <= PASS_TARGET_MB
    if not ok and not args.quick:
        prof = run_child({"config": str(cfg), "now_ms": now, "repeats": 1, "profile": True})
        print(prof["profile"])
    print(f"RESULT routine pass: slowest {worst * 1000:.1f} ms vs <= {PASS_TARGET_S * 1000:.0f} "
          f"ms, peak RSS {mib(peak):.1f} MiB vs <= {PASS_TARGET_MB:.0f} MB: "
          f"{'PASS' if ok else 'FAIL'}")
    summary = {k: {"median_ms": round(statistics.median(v["times_s"]) * 1000, 1),
                   "max_ms": round(max(v["times_s"]) * 1000, 1),
                   "peak_rss_mib": round(mib(v["peak_after"]), 1),
                   "peak_growth_mib": round(mib(v["peak_after"] - v["peak_before"]), 1),
                   "deletes": v["actions"].get("delete", 0)}
               for k, v in res.items() if k != "tracemalloc"}
    return {"rows": rows, "prepare_s": round(prep_s, 1) if prep_s else None, **summary,
            "tracemalloc_peak_mib": round(mib(res["tracemalloc"]["tracemalloc_peak"]), 2),
            "pass": ok}
