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
      two holds are added with ``CatalogWriter.holds.add``: cam03's first day and a little more
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
import itertools
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
from typing import TYPE_CHECKING, Any

from common import cached_catalog_matches, ccvault_version, remove_work  # bench/common.py

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
POLICY = {
    "continuous_days": 365,
    "motion_days": 366,
    "max_days": 366,
    "min_days": 7,
    "hot_days": 366,
}
SLICE_MS = 5 * MIN_MS  # the daemon's pass interval (RETENTION_EVERY_S)

# -- 2. purge -----------------------------------------------------------------------------
FILE_BYTES = 10 << 20  # 10 MiB
PURGE_RATIO_TARGET = 0.8
QUERY_P99_TARGET_MS = 20.0
QUERY_EVERY_S = 0.010
GAP_LIMIT_MS = 1000
PURGE_POLICY = {
    "continuous_days": 14,
    "motion_days": 30,
    "max_days": 30,
    "min_days": 7,
    "hot_days": 30,
}
EXPIRED_AGE_MS = 40 * DAY_MS
SEGMENT_S = 2
WIDTH, HEIGHT, FPS, KBPS, KEYINT = 1920, 1080, 15, 3000, 30


if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter

# =========================================================================================
# helpers


def mib(n: float) -> float:
    return n / 2**20


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): a value that was actually observed."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


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
    return cached_catalog_matches(path, "bench_retention", PREP_SPEC)


def prepare_catalog(seed: int) -> float:
    """Copy query.py's 8.4 M-row catalog and bring it to the steady state; returns seconds."""
    import query  # bench/query.py: its builder and cache

    from ccvault.catalog.writer import CatalogWriter

    t0 = time.perf_counter()
    tmp = PREPARED.with_name(PREPARED.name + ".building")
    query.remove_db(PREPARED)
    query.copy_catalog(tmp, seed)
    print(f"  {time.perf_counter() - t0:.0f} s", flush=True)

    ys = query.YEAR_START_MS
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # preparation only
    conn.execute("PRAGMA cache_size = -262144")
    print("marking every segment analysed, 20 % with activity ...", flush=True)
    conn.execute(f"UPDATE segments SET analysis = 1, activity = {activity_sql(ys)}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"  {time.perf_counter() - t0:.0f} s", flush=True)

    print("migrating with CatalogWriter (retention indexes, usage table) ...", flush=True)
    t_mig = time.perf_counter()
    writer = CatalogWriter(tmp)
    mig_s = time.perf_counter() - t_mig
    print(f"  migration {mig_s:.0f} s", flush=True)

    gone = make_steady_state(writer)
    print(f"  steady state: {gone:,} segments the previous pass deleted removed", flush=True)
    with writer.transaction() as c:
        c.execute("INSERT INTO meta (key, value) VALUES ('bench_retention', ?)", (PREP_SPEC,))
    writer.close()
    query.publish(tmp, PREPARED)
    return time.perf_counter() - t0


def activity_sql(ys: int) -> str:
    """Activity in runs: 12 minutes of each hour, starting at an offset that moves with the
    hour and the camera (20 % exactly); an SQL expression (0 or 1) both engines evaluate."""
    return (
        f"(CASE WHEN ((start_ms - {ys}) / 60000) % 60 - (((start_ms - {ys}) / 3600000) * 37"
        " + camera_id * 11) % 48 BETWEEN 0 AND 11 THEN 1 ELSE 0 END)"
    )


def make_steady_state(writer: CatalogWriter) -> int:
    """What the pass 5 minutes ago deleted is gone (cam03's held day is kept), and the two
    holds are added; on either engine. Returns the segments deleted."""
    from ccvault.catalog.rows import NewHold

    ys = year_start_ms()
    prev = pass_now_ms() - SLICE_MS
    hold_to = ys + DAY_MS + 10 * MIN_MS
    ms = {k: round(v * DAY_MS) for k, v in POLICY.items()}
    with writer.transaction() as c:
        gone = c.execute(
            "DELETE FROM segments WHERE NOT (camera_id = 3 AND start_ms < ?) AND ("
            " start_ms <= ? OR (activity = 0 AND analysis IN (1, 2) AND end_ms <= ?)"
            " OR (NOT (activity = 0 AND analysis IN (1, 2)) AND end_ms <= ?))",
            (
                hold_to,
                prev - ms["max_days"],
                prev - ms["continuous_days"],
                prev - ms["motion_days"],
            ),
        ).rowcount
    created = ys + 300 * DAY_MS
    writer.holds.add(
        NewHold(ys, hold_to, None, "legal request (bench)", "bench", ("cam03",)), created
    )
    june = int(datetime(2024, 6, 1, 10, tzinfo=UTC).timestamp() * 1000)
    writer.holds.add(
        NewHold(
            june, june + 2 * 3_600_000, pass_now_ms() + 30 * DAY_MS, "incident (bench)", "bench", ()
        ),
        created,
    )
    return gone


def write_pass_config(
    path: Path, volume: Path, policy: dict[str, float], storage: tuple[str, ...] = ()
) -> Path:
    """The pass's config; `storage` replaces the catalog line (another catalog's settings)."""
    lines = [
        'timezone = "UTC"',
        "",
        "[motion]",
        "enabled = false",
        "",
        *toml_policy(policy),
        "[storage]",
        *(storage or (f'catalog = "{PREPARED}"',)),
        "",
        "[[storage.volumes]]",
        'name = "hot"',
        f'path = "{volume}"',
        'role = "hot"',
        "",
    ]
    for i in range(1, 17):
        lines += ["[[cameras]]", f'name = "cam{i:02d}"', 'url = "demo://"', ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def give_volume_identity(volume: Path, target: Any = PREPARED) -> None:
    """The catalog's own volume row and catalog id, so volumes.check() finds it available."""
    from ccvault.catalog import db, queries
    from ccvault.storage.volumes import write_identity

    conn = db.connect(target, readonly=True)
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

    from ccvault.catalog import db, queries
    from ccvault.config.loading import load as load_config
    from ccvault.retention import candidates, pressure
    from ccvault.retention.passes import plan_pass
    from ccvault.storage.volumes import check

    conf = load_config(Path(spec["config"])).config
    conn = db.connect(conf.catalog_target, readonly=True)
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
    out: dict[str, Any] = {
        "times_s": times,
        "actions": dict(actions),
        "rules": dict(rules),
        "batches": batches,
    }
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
        sc = candidates.scope(conn, conf, vols)
        archives = pressure.archive_room(pressure.measure(conf, vols, conn, now))
        t = time.perf_counter()
        rows = sum(len(b) for b in candidates.routine(conn, sc, now, archives))
        out["routine_candidates"] = rows
        out["routine_select_s"] = time.perf_counter() - t
    conn.close()
    return out


def run_child(spec: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child-plan", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
    if res.returncode != 0:
        raise SystemExit(f"plan subprocess failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def show_pass(label: str, r: dict[str, Any]) -> None:
    times = r["times_s"]
    deletes = r["actions"].get("delete", 0)
    other = {k: v for k, v in r["actions"].items() if k != "delete"}
    print(
        f"  {label}: {len(times)} passes, first {times[0] * 1000:8.1f} ms, median "
        f"{statistics.median(times) * 1000:8.1f} ms, max {max(times) * 1000:8.1f} ms; "
        f"peak RSS {mib(r['peak_after']):6.1f} MiB (before the passes {mib(r['peak_before']):.1f}"
        f", +{mib(r['peak_after'] - r['peak_before']):.1f}); "
        f"{deletes:,} deletes planned{f', other {other}' if other else ''} "
        f"in {r['batches']} batches; rules {r['rules']}"
    )
    if "routine_candidates" in r:
        print(
            f"      routine selection alone: {r['routine_candidates']:,} candidate rows in "
            f"{r['routine_select_s'] * 1000:.1f} ms"
        )


def part_pass(args: argparse.Namespace) -> dict[str, Any]:
    prep_s = None
    if args.rebuild or not prepared_ok(PREPARED):
        prep_s = prepare_catalog(args.seed)
        print(f"prepared {PREPARED.name} in {prep_s:.0f} s")
    else:
        print(f"using the prepared catalog {PREPARED} (--rebuild to redo it)")
    conn = sqlite3.connect(f"file:{PREPARED}?mode=ro", uri=True)
    rows = conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
    idle = conn.execute(
        "SELECT COUNT(*) FROM segments INDEXED BY segments_idle"
        " WHERE activity = 0 AND analysis IN (1, 2)"
    ).fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    holds = conn.execute("SELECT COUNT(*) FROM holds WHERE released_ms IS NULL").fetchone()[0]
    conn.close()
    size = PREPARED.stat().st_size
    print(
        f"catalog: {rows:,} segments ({idle / rows:.1%} idle), {size / 2**30:.2f} GiB, "
        f"schema version {version}, {holds} holds"
    )
    volume = WORK / "volume-8m"
    give_volume_identity(volume)
    cfg = write_pass_config(WORK / "pass.toml", volume, POLICY)
    print(f"policy: {POLICY}; 16 cameras, one hot volume, no archive")
    now = pass_now_ms()
    repeats = 3 if args.quick else 7
    res: dict[str, Any] = {}
    print(
        "routine pass (plan_pass, all batches consumed, no file I/O), each in a fresh subprocess:"
    )
    res["steady"] = run_child(
        {"config": str(cfg), "now_ms": now, "repeats": repeats, "breakdown": True}
    )
    show_pass("steady state (5 min due)", res["steady"])
    res["tracemalloc"] = run_child(
        {"config": str(cfg), "now_ms": now, "repeats": 1, "tracemalloc": True}
    )
    print(
        f"  Python heap peak during one pass (tracemalloc): "
        f"{mib(res['tracemalloc']['tracemalloc_peak']):.2f} MiB"
    )
    res["evicted"] = run_child({"config": str(cfg), "now_ms": now, "repeats": 1, "evict": True})
    show_pass("catalog evicted from the page cache first", res["evicted"])
    res["catchup"] = run_child(
        {"config": str(cfg), "now_ms": now + DAY_MS, "repeats": repeats, "breakdown": True}
    )
    show_pass("catch-up (a day per camera due)", res["catchup"])
    if not args.quick and not args.skip_hot_default:
        hot_cfg = write_pass_config(WORK / "pass-hot7.toml", volume, {**POLICY, "hot_days": 7})
        res["hot_days_7"] = run_child(
            {"config": str(hot_cfg), "now_ms": now, "repeats": 1, "breakdown": True}
        )
        show_pass("same, hot_days = 7 (default), no archive", res["hot_days_7"])
    steady = res["steady"]
    worst = max(steady["times_s"])
    peak = steady["peak_after"]
    ok = worst <= PASS_TARGET_S and mib(peak) <= PASS_TARGET_MB
    if not ok and not args.quick:
        prof = run_child({"config": str(cfg), "now_ms": now, "repeats": 1, "profile": True})
        print(prof["profile"])
    print(
        f"RESULT routine pass: slowest {worst * 1000:.1f} ms vs <= {PASS_TARGET_S * 1000:.0f} "
        f"ms, peak RSS {mib(peak):.1f} MiB vs <= {PASS_TARGET_MB:.0f} MB: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    summary = {
        k: {
            "median_ms": round(statistics.median(v["times_s"]) * 1000, 1),
            "max_ms": round(max(v["times_s"]) * 1000, 1),
            "peak_rss_mib": round(mib(v["peak_after"]), 1),
            "peak_growth_mib": round(mib(v["peak_after"] - v["peak_before"]), 1),
            "deletes": v["actions"].get("delete", 0),
        }
        for k, v in res.items()
        if k != "tracemalloc"
    }
    return {
        "rows": rows,
        "prepare_s": round(prep_s, 1) if prep_s else None,
        **summary,
        "tracemalloc_peak_mib": round(mib(res["tracemalloc"]["tracemalloc_peak"]), 2),
        "pass": ok,
    }


# =========================================================================================
# 2. purge while recording


def child_queries(spec: dict[str, Any]) -> None:
    """Runs in a subprocess until SIGTERM: one random 1-hour segments_in_range every 10 ms.

    Writes `<CLOCK_MONOTONIC ns at start> <latency us> <rows>` per call to spec["out"]."""
    from ccvault.catalog import db, queries

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rng = random.Random(spec["seed"])
    conn = db.connect(Path(spec["catalog"]), readonly=True)
    lo, hi = spec["expired"]
    lines = []
    next_t = time.monotonic()
    while not stop:
        cam = rng.choice(spec["cameras"])
        if rng.random() < 0.5:
            start = rng.randrange(lo - 1_800_000, hi - 1_800_000)
        else:
            start = time.time_ns() // 1_000_000 - 3_600_000
        t = time.monotonic_ns()
        n = len(queries.segments_in_range(conn, cam, start, start + 3_600_000))
        lines.append(f"{t} {(time.monotonic_ns() - t) // 1000} {n}\n")
        next_t += QUERY_EVERY_S
        time.sleep(max(0.0, next_t - time.monotonic()))
    Path(spec["out"]).write_text("".join(lines))


def write_purge_config(path: Path, url: str, cameras: int) -> Path:
    lines = [
        'timezone = "UTC"',
        "",
        "[recording]",
        f"segment_seconds = {SEGMENT_S}",
        "",
        "[motion]",
        "enabled = false",
        "",
        *toml_policy(PURGE_POLICY),
        "[storage]",
        f'catalog = "{path.parent / "catalog.sqlite"}"',
        "",
        "[[storage.volumes]]",
        'name = "hot"',
        f'path = "{path.parent / "volume"}"',
        'role = "hot"',
        "",
    ]
    for i in range(1, cameras + 1):
        lines += ["[[cameras]]", f'name = "cam{i}"', f'url = "{url}"', ""]
    path.write_text("\n".join(lines))
    return path


def lay_out_files(
    root: Path, cameras: list[str], per_camera: int, first_ms: int, data: bytes
) -> list[tuple[str, int, str]]:
    """(camera, start_ms, relpath) of one-minute segment files written under root."""
    from ccvault.storage.store import segment_relpath

    out = []
    for cam in cameras:
        for k in range(per_camera):
            start = first_ms + k * MIN_MS
            rel = segment_relpath(cam, start, MIN_MS)
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            out.append((cam, start, rel))
    return out


def unlink_loop(paths: list[Path]) -> float:
    t = time.perf_counter()
    for p in paths:
        os.unlink(p)
    return time.perf_counter() - t


def wall_s(ts: str) -> float:
    """A log event's ISO timestamp as epoch seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def part_purge(args: argparse.Namespace) -> dict[str, Any]:
    import hashlib

    from record_cpu import LogTail, stop  # bench/record_cpu.py (puts the repo on sys.path)

    from ccvault.catalog import db
    from ccvault.catalog.writer import CatalogWriter
    from tests.peers import RtspServer

    n = args.files or (200 if args.quick else 2000)
    n_cams = 2 if args.quick else 4
    du = shutil.disk_usage(OUT)
    reserve = max(1 << 30, du.total * 5 // 100)  # the volume's default low-water mark
    room = du.free - reserve - (5 << 30)
    if room < 2 * n * FILE_BYTES:
        n = max(n_cams * 10, int(room // (2 * FILE_BYTES)) // n_cams * n_cams)
        print(f"  not enough free space for 2 x {args.files or 2000} files: scaled down to {n}")
    per_cam = n // n_cams
    n = per_cam * n_cams
    print(
        f"disk: {du.free / 1e9:.1f} GB free of {du.total / 1e9:.1f} GB; needs "
        f"{2 * n * FILE_BYTES / 1e9:.1f} GB for 2 x {n} files of {FILE_BYTES:,} bytes, and "
        f"keeps the volume's reserve ({reserve / 1e9:.1f} GB) free so no pressure purge runs"
    )
    if WORK.exists():
        shutil.rmtree(WORK)
    run = WORK / "purge"
    volume, stage, base = run / "volume", run / "stage", run / "baseline"
    for d in (volume, stage, base):
        d.mkdir(parents=True)
    cams = [f"cam{i}" for i in range(1, n_cams + 1)]
    data = random.Random(args.seed).randbytes(FILE_BYTES)
    sha = hashlib.sha256(data).hexdigest()
    now_ms = time.time_ns() // 1_000_000
    expired_first = (now_ms - EXPIRED_AGE_MS) // 3_600_000 * 3_600_000
    t = time.perf_counter()
    print(
        f"writing 2 x {n} files ({n_cams} cameras x {per_cam} one-minute segments, 40 and "
        f"50 days old) ...",
        flush=True,
    )
    staged = lay_out_files(stage, cams, per_cam, expired_first, data)
    baseline = lay_out_files(base, cams, per_cam, expired_first - 10 * DAY_MS, data)
    os.sync()
    print(f"  {time.perf_counter() - t:.0f} s (written and synced)", flush=True)
    half = per_cam // 2
    base_a = [
        base / rel
        for cam, start, rel in baseline
        if (start - expired_first + 10 * DAY_MS) // MIN_MS < half
    ]
    base_b = [
        base / rel
        for cam, start, rel in baseline
        if (start - expired_first + 10 * DAY_MS) // MIN_MS >= half
    ]

    server = RtspServer(
        pattern="snow",
        paths=("/cam",),
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        bitrate_kbps=KBPS,
        keyint=KEYINT,
    )
    daemon: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        cfg = write_purge_config(run / "ccvault.toml", server.url("/cam"), n_cams)
        log_path = run / "daemon.log.jsonl"
        with open(log_path, "wb") as out, open(run / "daemon.stderr", "wb") as err:
            daemon = subprocess.Popen(
                [str(CCVAULT), "--config", str(cfg), "run"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        daemon_start_ms = time.time_ns() // 1_000_000
        print(
            f"ccvault run: pid {daemon.pid}, {n_cams} cameras at {server.url('/cam')} "
            f"(1080p15 ~{KBPS} kbit/s, one shared stream), {SEGMENT_S} s segments"
        )
        tail = LogTail(log_path)
        recording: set[str] = set()
        passes = 0
        t0 = time.monotonic()
        while recording != set(cams) or passes == 0:
            if daemon.poll() is not None:
                raise RuntimeError(
                    f"ccvault run exited ({daemon.returncode}): "
                    f"{(run / 'daemon.stderr').read_text()[-2000:]}"
                )
            if time.monotonic() - t0 > 120:
                raise RuntimeError(
                    f"after 120 s: recording {sorted(recording)}, {passes} retention passes"
                )
            for ev in tail.poll():
                if ev.get("event") == "camera.state" and ev.get("new") == "recording":
                    recording.add(str(ev.get("camera")))
                elif ev.get("event") == "retention.pass":
                    passes += 1
            time.sleep(0.25)
        print(
            f"  all cameras recording, and the daemon's first retention pass done, "
            f"{time.monotonic() - t0:.1f} s after start"
        )

        # Stage the expired footage: files onto the volume (rename, same filesystem), rows in.
        for hour_dir in sorted({(stage / rel).parent for _, _, rel in staged}):
            dst = volume / hour_dir.relative_to(stage)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.rename(hour_dir, dst)
        writer = CatalogWriter(run / "catalog.sqlite")
        with writer.transaction() as c:
            cam_ids = dict(c.execute("SELECT name, id FROM cameras").fetchall())
            vol_id = c.execute("SELECT id FROM volumes WHERE name = 'hot'").fetchone()[0]
            c.executemany(
                "INSERT INTO segments (camera_id, volume_id, start_ms, end_ms, path, bytes,"
                " sha256, codec, width, height, frames, origin, ingested_ms, analysis, activity)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'h264', 1920, 1080, 900, 'recorded', ?, 1, 0)",
                [
                    (
                        cam_ids[cam],
                        vol_id,
                        start,
                        start + MIN_MS,
                        rel,
                        FILE_BYTES,
                        sha,
                        start + MIN_MS + 2000,
                    )
                    for cam, start, rel in staged
                ],
            )
            c.execute("UPDATE cameras SET max_segment_ms = MAX(max_segment_ms, ?)", (MIN_MS,))
        writer.close()
        catalog_files = [run / f"catalog.sqlite{s}" for s in ("", "-wal", "-shm")]
        print(f"  {n} expired segments catalogued (files moved onto the volume)")

        qout = run / "queries.txt"
        worker = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child-queries",
                json.dumps(
                    {
                        "catalog": str(run / "catalog.sqlite"),
                        "cameras": cams,
                        "expired": [expired_first, expired_first + per_cam * MIN_MS],
                        "seed": args.seed,
                        "out": str(qout),
                    }
                ),
            ],
            cwd=REPO,
        )
        wall0, mono0 = time.time(), time.monotonic()
        phases: dict[str, tuple[float, float]] = {}
        dropped = []

        def settle() -> None:
            dropped.append(drop_page_cache())
            read_back(catalog_files)
            time.sleep(2.0)

        time.sleep(3.0)
        a = time.monotonic()
        time.sleep(10.0)
        phases["recording only"] = (a, time.monotonic())
        settle()
        a = time.monotonic()
        t_base_a = unlink_loop(base_a)
        phases["unlink loop, before"] = (a, time.monotonic())
        settle()
        a = time.monotonic()
        res = subprocess.run(
            [str(CCVAULT), "--config", str(cfg), "purge", "--json"],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        purge_wall = time.monotonic() - a
        phases["purge"] = (a, time.monotonic())
        if res.returncode != 0:
            raise RuntimeError(f"ccvault purge failed ({res.returncode}): {res.stderr[-2000:]}")
        settle()
        a = time.monotonic()
        t_base_b = unlink_loop(base_b)
        phases["unlink loop, after"] = (a, time.monotonic())
        time.sleep(2 * SEGMENT_S + 2)
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        worker = None
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(60)
        daemon = None
        tail.poll()

        # -- purge figures ----------------------------------------------------------------
        outcome = json.loads(res.stdout)
        cli_events = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
        rp = next(e for e in cli_events if e.get("event") == "retention.pass")
        chunks = [e for e in cli_events if e.get("event") == "purge.done"]
        purge_s = float(rp["seconds"])
        purge_rate = outcome["deleted"] / purge_s
        rate_a, rate_b = len(base_a) / t_base_a, len(base_b) / t_base_b
        base_rate = (len(base_a) + len(base_b)) / (t_base_a + t_base_b)
        ratio = purge_rate / base_rate
        print(
            f"page cache dropped before each unlink phase and the purge: "
            f"{'yes' if all(dropped) else 'NO (not root): files may be cached'}"
        )
        print(
            f"  bare os.unlink loop, before the purge: {len(base_a)} files in {t_base_a:.2f} s "
            f"= {rate_a:7.1f} files/s"
        )
        print(
            f"  ccvault purge: {outcome['deleted']} deleted ({outcome['deleted_bytes'] / 1e9:.1f}"
            f" GB) in {purge_s:.2f} s (its retention.pass) = {purge_rate:7.1f} files/s; "
            f"{len(chunks)} chunks; CLI wall time {purge_wall:.2f} s with start-up "
            f"({outcome['deleted'] / purge_wall:.1f} files/s)"
        )
        print(
            f"  bare os.unlink loop, after the purge:  {len(base_b)} files in {t_base_b:.2f} s "
            f"= {rate_b:7.1f} files/s"
        )
        print(
            f"  -> purge / bare unlink (both loops together, {base_rate:.1f} files/s): "
            f"{ratio:.2f} (vs before only {purge_rate / rate_a:.2f}, after only "
            f"{purge_rate / rate_b:.2f})"
        )

        # -- queries ------------------------------------------------------------------------
        samples = []
        for line in qout.read_text().splitlines():
            t_ns, lat_us, rows = line.split()
            samples.append((int(t_ns) / 1e9, int(lat_us) / 1000, int(rows)))
        q: dict[str, dict[str, float]] = {}
        print(
            f"1-hour segments_in_range latency (separate process, one call every "
            f"{QUERY_EVERY_S * 1000:.0f} ms):"
        )
        for name, (lo, hi) in phases.items():
            lat = [ms for t_s, ms, _ in samples if lo <= t_s < hi]
            if not lat:
                continue
            q[name] = {
                "n": len(lat),
                "p50_ms": round(pct(lat, 50), 3),
                "p99_ms": round(pct(lat, 99), 3),
                "max_ms": round(max(lat), 3),
            }
            print(
                f"  {name:<22} n={len(lat):<5} p50 {q[name]['p50_ms']:7.3f}  p99 "
                f"{q[name]['p99_ms']:7.3f}  max {q[name]['max_ms']:7.3f} ms"
            )

        # -- recording: nothing lost ----------------------------------------------------------
        events = tail.events
        ingested = [e for e in events if e.get("event") == "segment.ingested"]
        restarts = Counter(
            str(e.get("camera")) for e in events if e.get("event") == "recorder.started"
        )
        exits = sum(1 for e in events if e.get("event") == "recorder.exited")
        daemon_deletes = sum(
            int(e.get("segments", 0)) for e in events if e.get("event") == "purge.done"
        )
        conn = db.connect(run / "catalog.sqlite", readonly=True)
        by_id = {
            r["id"]: r
            for r in conn.execute(
                "SELECT s.id, c.name AS camera, s.start_ms, s.end_ms, s.path, s.state"
                " FROM segments s JOIN cameras c ON c.id = s.camera_id WHERE s.origin = 'recorded'"
                " AND s.start_ms >= ?",
                (daemon_start_ms - 3_600_000,),
            )
        }
        left = conn.execute(
            "SELECT COUNT(*) FROM segments WHERE end_ms < ?", (now_ms - 30 * DAY_MS,)
        ).fetchone()[0]
        conn.close()
        lost = [
            e
            for e in ingested
            if e["segment_id"] not in by_id
            or by_id[e["segment_id"]]["state"] != "ok"
            or not (volume / by_id[e["segment_id"]]["path"]).exists()
        ]
        files_left = sum(1 for _, _, rel in staged if (volume / rel).exists())
        gaps: dict[str, int] = {}
        worst_gap: dict[str, int] = {}
        for cam in cams:
            segs = sorted(
                (r["start_ms"], r["end_ms"]) for r in by_id.values() if r["camera"] == cam
            )
            holes = [b[0] - a[1] for a, b in itertools.pairwise(segs)]
            gaps[cam] = sum(1 for h in holes if abs(h) > GAP_LIMIT_MS)
            worst_gap[cam] = max((abs(h) for h in holes), default=0)
        lag = {}
        for name, (lo, hi) in phases.items():
            lags = [
                wall_s(e["timestamp"]) - (e["start_ms"] + e["duration_ms"]) / 1000
                for e in ingested
                if lo <= mono0 + wall_s(e["timestamp"]) - wall0 < hi
            ]
            if lags:
                lag[name] = (len(lags), max(lags))
        in_purge = lag.get("purge", (0, 0.0))[0]
        print(
            f"recording: daemon exited {rc}; {len(ingested)} segments logged as ingested "
            f"({in_purge} during the purge), {len(lost)} of them missing from catalog or disk;"
            f" recorder starts per camera {dict(restarts)}, {exits} exits"
        )
        print(
            "  ingest lag (segment end to its segment.ingested event), max per phase: "
            + ", ".join(f"{k}: {v[1]:.2f} s ({v[0]} segments)" for k, v in lag.items())
        )
        print(
            f"  timeline gaps > {GAP_LIMIT_MS} ms per camera: {gaps}; largest |gap| (ms): "
            f"{worst_gap}"
        )
        print(
            f"  expired rows left {left}, expired files left {files_left}; deletions by the "
            f"daemon's own retention job meanwhile: {daemon_deletes}"
        )
        recorded_ok = (
            rc == 0
            and not lost
            and not any(gaps.values())
            and exits == 0
            and all(v == 1 for v in restarts.values())
            and len(restarts) == n_cams
        )
        purge_ok = outcome["deleted"] == n and left == 0 and files_left == 0 and daemon_deletes == 0
        p99 = q.get("purge", {}).get("p99_ms", float("inf"))
        ok = ratio >= PURGE_RATIO_TARGET and p99 <= QUERY_P99_TARGET_MS and recorded_ok and purge_ok
        print(
            f"RESULT purge: {purge_rate:.1f} files/s = {ratio:.2f} x bare unlink (target >= "
            f"{PURGE_RATIO_TARGET}), query p99 during the purge {p99:.2f} ms (target <= "
            f"{QUERY_P99_TARGET_MS:.0f}), recording {'intact' if recorded_ok else 'NOT intact'}"
            f", purge {'complete' if purge_ok else 'INCOMPLETE'}: {'PASS' if ok else 'FAIL'}"
        )
        return {
            "files": n,
            "file_bytes": FILE_BYTES,
            "cameras": n_cams,
            "purge_files_per_s": round(purge_rate, 1),
            "purge_s": purge_s,
            "purge_cli_wall_s": round(purge_wall, 2),
            "unlink_before_files_per_s": round(rate_a, 1),
            "unlink_after_files_per_s": round(rate_b, 1),
            "unlink_files_per_s": round(base_rate, 1),
            "ratio": round(ratio, 3),
            "queries": q,
            "ingested": len(ingested),
            "ingested_during_purge": in_purge,
            "lost": len(lost),
            "gaps": gaps,
            "recorder_exits": exits,
            "page_cache_dropped": all(dropped),
            "recorded_ok": recorded_ok,
            "purge_complete": purge_ok,
            "pass": ok,
        }
    finally:
        if worker is not None:
            stop(worker, signal.SIGTERM, 10)
        if daemon is not None:
            stop(daemon, signal.SIGTERM, 30)
        server.stop()
        remove_work(WORK, args.keep)


# =========================================================================================


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="3 repeats, no hot_days=7 variant; 200 + 200 files, 2 cameras",
    )
    ap.add_argument("--rebuild", action="store_true", help="prepare the retention catalog again")
    ap.add_argument("--files", type=int, default=None, help="files to purge (default 2000)")
    ap.add_argument("--skip-pass", action="store_true", help="only the purge part")
    ap.add_argument("--skip-purge", action="store_true", help="only the routine pass part")
    ap.add_argument(
        "--skip-hot-default",
        action="store_true",
        help="skip the hot_days = 7 variant (it walks the whole catalog)",
    )
    ap.add_argument("--keep", action="store_true", help=f"keep {WORK} afterwards")
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--child-plan", help=argparse.SUPPRESS)
    ap.add_argument("--child-queries", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_plan:
        print(json.dumps(child_plan(json.loads(args.child_plan))))
        return 0
    if args.child_queries:
        child_queries(json.loads(args.child_queries))
        return 0

    print(
        "bench/retention.py — retention: routine pass on 8.4 M segments; purge of real files "
        "while recording"
    )
    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    version = ccvault_version()
    print(f"ccvault source: {version}")
    result: dict[str, Any] = {"bench": "retention", "ccvault": version, "quick": args.quick}
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        if not args.skip_pass:
            print("\n== 1. routine pass ==")
            result["routine"] = part_pass(args)
        if not args.skip_purge:
            print("\n== 2. purge while recording ==")
            result["purge"] = part_purge(args)
    finally:
        if not args.keep and WORK.exists():
            shutil.rmtree(WORK)
    result["grooming"] = "bench/grooming.py"
    result["pass"] = all(result[k]["pass"] for k in ("routine", "purge") if k in result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
