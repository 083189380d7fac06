"""Benchmark: how many live 1080p15 cameras one node records with everything running.

What it measures (issue 16 item 1)
    For each N in ``--cameras`` (default 8,16,32,64), in one run:
    1. Baseline: N bare ``ffmpeg -c copy`` processes recording N RTSP sessions into
       ``--segment-seconds`` MP4 segments (the bundled ffmpeg ccvault uses), their summed
       user+system CPU over the window; measured before the daemon's window and again after
       it, and the mean of the two is the baseline (the machine drifts between windows).
    2. ccvault: the REAL daemon (``ccvault run``; the only change is the retention pass
       interval, ``--retention-every`` instead of 300 s, so that several passes fall in the
       window) with a generated config: N cameras at the same URL, ``segment_seconds`` =
       ``--segment-seconds``, DEFAULT motion analysis (auto mode, default workers), default
       retention. Measured over the same window length: CPU of the daemon process and all its
       descendants (ffmpeg recorders, motion worker processes; reaped children included), split
       by kind; per camera; and the ratio to the baseline per camera. The daemon's own CPU
       is split by thread (ccvault names its threads in the OS: `host/threads.py`), and the
       recording path alone — the recorders plus the supervisor, ffmpeg-output and ingest
       threads; not the scrub, the motion scheduler, retention, the API or the health
       checks — is given as a ratio to the baseline too, split into the recorders' share and
       the daemon threads'. The RTSP server is not counted.
    Then, per N: segments expected (what the recorders listed in their ``segments.csv`` before
    the stop, +1 per camera for the segment closed at the stop) vs stored (catalog rows), gaps
    over 1 s between a camera's consecutive rows, quarantined files; the motion-analysis
    backlog (segments waiting) sampled every 5 s: at the window's start, end, its maximum and
    its slope; ingest latency (``segment.ingested`` log time minus the segment's end); every
    ``retention.pass`` in the window: its duration and how late it started after the previous
    one; recorder (re)starts and exits in the window.
    N "keeps up" when no segment is lost (stored >= expected, no gap), the backlog is bounded
    (at the end <= 1 per camera, or grown by < 0.5 per camera in the window), and every pass
    finished within its interval and started at most 5 s late. The sweep stops at the first N
    that does not keep up and reports the largest that did.

The machine is shared: the load average and the CPU used by processes other than ccvault,
the baseline and the RTSP server during the window are printed ("measured under load X").

How
    - The source clip is made once with ffmpeg's lavfi (cached in ``bench/out``): 60 s of SMPTE
      HD bars with temporal sensor noise (``noise=alls=10:allf=t``) and a white box crossing
      the picture from 20 s to 26 s (motion in 10 % of the time), libx264 veryfast, 3 Mbit/s,
      keyframe every 2 s, no B-frames; ten copies are joined by stream copy into a 600 s clip.
    - ``tests.peers.RtspServer(file=...)`` (gst-rtsp-server, run by the system python) serves
      that file by stream copy (qtdemux ! h264parse ! rtph264pay), in real time, one pipeline
      per session (each starts the clip at its beginning; a shared file-backed media crashed
      gst-rtsp-server 1.22 with ~20 sessions). Baseline and ccvault pull the same path.
    - CPU: psutil snapshots of each process tree at the window's start and end (user+system
      plus ``children_*`` of reaped children, as bench/record_cpu.py). ``/proc`` counts in
      10 ms ticks.

Run: ``.venv/bin/python bench/capacity.py [--quick] [--cameras 8,16,32,64] [--seconds S]``.
``--quick`` = 4 cameras, 30 s windows, 10 s warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import psutil
from common import ccvault_version, remove_work  # bench/common.py
from record_cpu import LogTail, pct, proc_cpu, stop  # bench/record_cpu.py

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.peers import RtspServer  # noqa: E402

OUT = REPO / "bench" / "out"
WORK = OUT / "capacity-run"
PYTHON = REPO / ".venv" / "bin" / "python"
CLIP = OUT / "capacity-1080p15-600s-3M.mp4"
UNIT_S, CLIP_COPIES = 60, 10
SAMPLE_S = 5.0
LATE_S = 5.0  # a retention pass may start this much after its interval
# The daemon, unchanged but for the retention pass interval (the bench wants several passes).
DAEMON = (
    "import sys, ccvault.service.jobs as j, ccvault.cli;"
    "j.RETENTION_EVERY_S = float(sys.argv[1]);"
    "print('ccvault imported from', j.__file__, file=sys.stderr, flush=True);"
    "sys.argv = ['ccvault', '--config', sys.argv[2], 'run'];"
    "ccvault.cli.main()"
)


def ensure_clip() -> Path:
    """The 600 s source clip (lavfi, cached): mostly idle, a box crossing 10 % of the time."""
    if CLIP.exists():
        return CLIP
    OUT.mkdir(parents=True, exist_ok=True)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    unit = OUT / "capacity-unit-60s.mp4"
    graph = (
        f"smptehdbars=s=1920x1080:r=15:d={UNIT_S},noise=alls=10:allf=t[bg];"
        f"color=c=white:s=240x480:r=15:d={UNIT_S}[box];"
        "[bg][box]overlay=x='if(between(t,20,26),(t-20)*300,-300)':y=400"
    )
    print(f"encoding {unit.name} with lavfi (once, ~1 min)...", flush=True)
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", graph,
         "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "30", "-keyint_min", "30",
         "-sc_threshold", "0", "-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M",
         "-pix_fmt", "yuv420p", str(unit)],
        check=True,
    )  # fmt: skip
    listing = OUT / "capacity-concat.txt"
    listing.write_text(f"file '{unit.name}'\n" * CLIP_COPIES)
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
         "-i", str(listing), "-c", "copy", "-movflags", "+faststart", str(CLIP)],
        check=True,
    )  # fmt: skip
    unit.unlink()
    listing.unlink()
    return CLIP


@dataclass
class Tree:
    """CPU seconds of a process tree so far, by kind of process."""

    wall: float
    by_kind: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.by_kind.values())


def kind_of(p: psutil.Process) -> str:
    name = p.name()
    if name.startswith("ffmpeg"):
        return "ffmpeg"
    return "motion workers" if "multiprocessing" in " ".join(p.cmdline()) else "other children"


def tree_cpu(roots: list[psutil.Process], root_kind: str) -> Tree:
    """CPU of roots and every live descendant; a reaped child counts in its parent's
    children_* (charged to the parent's kind)."""
    snap = Tree(time.monotonic())
    for root in roots:
        procs = [(root, root_kind)]
        try:
            procs += [(k, kind_of(k)) for k in root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc, kind in procs:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                snap.by_kind[kind] = snap.by_kind.get(kind, 0.0) + proc_cpu(proc)
    return snap


def delta(a: Tree, b: Tree) -> dict[str, float]:
    return {k: b.by_kind.get(k, 0.0) - a.by_kind.get(k, 0.0) for k in b.by_kind}


def busy_cpu() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - t.iowait


@dataclass
class Machine:
    """What the rest of the machine did in a window (it is shared)."""

    load: tuple[float, float, float]
    busy_s: float
    others_pct: float  # % of one core used by processes other than the measured ones


def machine_during(busy0: float, busy1: float, measured_s: float, wall: float) -> Machine:
    others = max(0.0, (busy1 - busy0) - measured_s)
    return Machine(os.getloadavg(), busy1 - busy0, pct(others, wall))


# -- baseline -------------------------------------------------------------------------------


def baseline(url: str, n: int, seg_s: int, warmup: float, seconds: float, srv: psutil.Process):
    out = WORK / "bare"
    procs = []
    for i in range(n):
        d = out / f"cam{i + 1}"
        d.mkdir(parents=True)
        procs.append(
            subprocess.Popen(
                [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel",
                 "error", "-rtsp_transport", "tcp", "-i", url, "-map", "0:v", "-c", "copy",
                 "-f", "segment", "-segment_time", str(seg_s), "-reset_timestamps", "1",
                 str(d / "%06d.mp4")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not all(any((out / f"cam{i + 1}").glob("*.mp4")) for i in range(n)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("bare ffmpeg did not start recording every stream")
            time.sleep(0.5)
        time.sleep(warmup)
        ps = [psutil.Process(p.pid) for p in procs]
        busy0, s0, a = busy_cpu(), proc_cpu(srv), tree_cpu(ps, "ffmpeg")
        time.sleep(seconds)
        b, s1, busy1 = tree_cpu(ps, "ffmpeg"), proc_cpu(srv), busy_cpu()
        exited = sum(1 for p in procs if p.poll() is not None)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            stop(p, signal.SIGINT, 15)
    wall = b.wall - a.wall
    cpu = b.total - a.total
    machine = machine_during(busy0, busy1, cpu + (s1 - s0), wall)
    shutil.rmtree(out)
    return {
        "pct": pct(cpu, wall),
        "per_camera_pct": pct(cpu, wall) / n,
        "window_s": wall,
        "exited": exited,
        "server_pct": pct(s1 - s0, wall),
        "machine": machine,
    }


# -- ccvault --------------------------------------------------------------------------------


def write_config(n: int, url: str, seg_s: int, workers: int | None) -> Path:
    """N cameras, short segments; motion (unless --workers) and retention at their defaults."""
    lines = [
        'timezone = "UTC"',
        *(["[motion]", f"workers = {workers}"] if workers else []),
        "[recording]",
        f"segment_seconds = {seg_s}",
        "[storage]",
        f'catalog = "{WORK / "catalog.sqlite"}"',
        "[[storage.volumes]]",
        'name = "hot"',
        f'path = "{WORK / "volume"}"',
        'role = "hot"',
    ]
    for i in range(1, n + 1):
        lines += ["[[cameras]]", f'name = "cam{i}"', f'url = "{url}"']
    path = WORK / "ccvault.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def catalog(query: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{WORK / 'catalog.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def backlog() -> int:
    return catalog("SELECT COUNT(*) FROM segments WHERE analysis = 0 AND state = 'ok'")[0][0]


def listed_now(seen: set[tuple[str, str, str]]) -> None:
    """Every segment the recorders listed so far (ingest removes a run's list when it ends,
    so the lists are read every few seconds)."""
    for lst in (WORK / "volume").rglob("segments.csv"):
        try:
            text = lst.read_text()
        except FileNotFoundError:
            continue
        for line in text.splitlines(keepends=True):
            if line.endswith("\n") and line.count(",") == 2:
                seen.add((lst.parent.parent.name, lst.parent.name, line.split(",")[0]))


def stamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def start_daemon(
    cfg: Path, retention_every: float, source: Path | None
) -> tuple[subprocess.Popen[bytes], LogTail]:
    """`ccvault run` of this tree, or of `source` (put first on the path; the daemon runs in
    WORK so that the current directory's ccvault/ is not the one imported)."""
    log_path = WORK / "daemon.log.jsonl"
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source.resolve())
    with open(log_path, "wb") as out, open(WORK / "daemon.stderr", "wb") as err:
        daemon = subprocess.Popen(
            [str(PYTHON), "-c", DAEMON, str(retention_every), str(cfg)],
            cwd=WORK,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    return daemon, LogTail(log_path)


def wait_recording(daemon: subprocess.Popen[bytes], tail: LogTail, n: int) -> float:
    t0, recording = time.monotonic(), set()
    while len(recording) < n:
        if daemon.poll() is not None:
            raise RuntimeError(
                f"ccvault run exited: {(WORK / 'daemon.stderr').read_text()[-2000:]}"
            )
        if time.monotonic() - t0 > 120:
            raise RuntimeError(f"only {len(recording)} of {n} cameras recording after 120 s")
        for ev in tail.poll():
            if ev.get("event") == "camera.state" and ev.get("new") == "recording":
                recording.add(ev.get("camera"))
        time.sleep(0.5)
    return time.monotonic() - t0


# The daemon's threads that record (ccvault names its threads in the OS: host/threads.py):
# the recorders' supervisor, the one thread reading every ffmpeg's output, and ingest.
RECORDING_THREADS = ("supervisor", "ffmpeg-output", "ingest")


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of each thread of pid, by thread id, with its OS name."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
            cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            found[int(task.name)] = ((task / "comm").read_text().strip(), cpu)
    return found


def by_thread(a: dict[int, tuple[str, float]], b: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds between two snapshots by thread name (a thread that ended between them is
    not counted; one that started counts from 0)."""
    spent: dict[str, float] = {}
    for tid, (name, cpu) in b.items():
        spent[name] = spent.get(name, 0.0) + cpu - a.get(tid, (name, 0.0))[1]
    return spent


@dataclass
class Window:
    cpu: dict[str, float]
    threads: dict[str, float]  # the daemon's CPU seconds by thread name
    wall: float
    backlog: list[tuple[float, int]]
    machine: Machine
    server_pct: float
    events: list[dict[str, Any]]


def watch(daemon: subprocess.Popen[bytes], tail: LogTail, seconds: float, srv: psutil.Process,
          seen: set[tuple[str, str, str]]) -> Window:  # fmt: skip
    root = psutil.Process(daemon.pid)
    tail.poll()  # what came before the window
    busy0, s0, a = busy_cpu(), proc_cpu(srv), tree_cpu([root], "daemon (python)")
    threads0 = thread_cpu(root.pid)
    samples = [(0.0, backlog())]
    while time.monotonic() - a.wall < seconds:
        time.sleep(min(SAMPLE_S, max(0.0, seconds - (time.monotonic() - a.wall))))
        samples.append((time.monotonic() - a.wall, backlog()))
        listed_now(seen)
    threads = by_thread(threads0, thread_cpu(root.pid))
    b, s1, busy1 = tree_cpu([root], "daemon (python)"), proc_cpu(srv), busy_cpu()
    wall = b.wall - a.wall
    machine = machine_during(busy0, busy1, (b.total - a.total) + (s1 - s0), wall)
    return Window(delta(a, b), threads, wall, samples, machine, pct(s1 - s0, wall), tail.poll())


def footage_check(n: int, seen: set[tuple[str, str, str]]) -> dict[str, Any]:
    """Listed (expected) vs stored segments per camera, and gaps between stored ones."""
    rows = catalog(
        "SELECT c.name, s.start_ms, s.end_ms FROM segments s JOIN cameras c"
        " ON c.id = s.camera_id ORDER BY c.name, s.start_ms"
    )
    stored: dict[str, list[tuple[int, int]]] = {f"cam{i}": [] for i in range(1, n + 1)}
    for name, start, end in rows:
        stored.setdefault(name, []).append((start, end))
    listed = {cam: 0 for cam in stored}
    for cam, _run, _name in seen:
        listed[cam] = listed.get(cam, 0) + 1
    gaps = {
        cam: sum(1 for (_, e), (s, _) in itertools.pairwise(segs) if s - e > 1000)
        for cam, segs in stored.items()
    }
    short = {
        cam: listed[cam] - len(segs) for cam, segs in stored.items() if len(segs) < listed[cam]
    }
    return {
        "listed": sum(listed.values()),
        "stored": sum(len(s) for s in stored.values()),
        "per_camera_stored": sorted({len(s) for s in stored.values()}),
        "lost": sum(short.values()),
        "gaps": sum(gaps.values()),
    }


def passes(events: list[dict[str, Any]], every: float) -> dict[str, Any]:
    """Each retention pass in the window: duration, and lateness against its interval."""
    runs = [(stamp(e) - float(e["seconds"]), float(e["seconds"])) for e in events
            if e.get("event") == "retention.pass"]  # fmt: skip
    late = [max(0.0, b[0] - a[0] - every) for a, b in itertools.pairwise(runs)]
    return {
        "count": len(runs),
        "seconds_max": max((s for _, s in runs), default=0.0),
        "seconds_median": statistics.median([s for _, s in runs]) if runs else 0.0,
        "late_max_s": max(late, default=0.0),
        "on_time": all(s < every for _, s in runs) and all(x <= LATE_S for x in late),
    }


def ingest_latency(events: list[dict[str, Any]]) -> dict[str, float]:
    lags = sorted(
        stamp(e) - (int(e["start_ms"]) + int(e["duration_ms"])) / 1000
        for e in events
        if e.get("event") == "segment.ingested"
    )
    if not lags:
        return {"p50_s": 0.0, "max_s": 0.0, "count": 0}
    return {"p50_s": lags[len(lags) // 2], "max_s": lags[-1], "count": len(lags)}


def trend(samples: list[tuple[float, int]], n: int) -> dict[str, Any]:
    """The backlog over the window: bounded when it ends at most one segment per camera (the
    one just stored), or grew by less than half a segment per camera over the window."""
    first, last = samples[0][1], samples[-1][1]
    xs, ys = [t for t, _ in samples], [b for _, b in samples]
    slope = statistics.linear_regression(xs, ys).slope * 60 if len(samples) > 2 else 0.0
    return {
        "start": first,
        "end": last,
        "max": max(ys),
        "slope_per_min": slope,
        "bounded": last <= n or last - first <= n / 2,
    }


def measure_ccvault(
    url: str, n: int, args: argparse.Namespace, srv: psutil.Process, source: Path | None
):
    cfg = write_config(n, url, args.segment_seconds, args.workers)
    daemon, tail = start_daemon(cfg, args.retention_every, source)
    seen: set[tuple[str, str, str]] = set()
    try:
        took = wait_recording(daemon, tail, n)
        origin = (WORK / "daemon.stderr").read_text().splitlines()[0]
        print(f"  {origin}: all {n} cameras recording {took:.1f} s after start", flush=True)
        time.sleep(args.warmup)
        window = watch(daemon, tail, args.seconds, srv, seen)
        listed_now(seen)
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(120)
    finally:
        stop(daemon, signal.SIGTERM, 60)
    window.events += tail.poll()
    stop_events = [e for e in window.events if e.get("event") == "segment.quarantined"]
    starts = sum(1 for e in window.events if e.get("event") == "recorder.started")
    exits = sum(1 for e in window.events if e.get("event") == "recorder.exited")
    return window, {
        "exit": rc,
        "footage": footage_check(n, seen),
        "quarantined": len(stop_events),
        "recorder_starts": starts,
        "recorder_exits": exits,
        "backlog": trend(window.backlog, n),
        "retention": passes(window.events, args.retention_every),
        "ingest_latency": ingest_latency(window.events),
    }


def load_text(m: Machine) -> str:
    return (
        f"load average {m.load[0]:.2f} {m.load[1]:.2f} {m.load[2]:.2f}; other processes "
        f"{m.others_pct:.0f} % of one core"
    )


def run_one(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Baseline, then the daemon of each source (--before's first), one RTSP path each."""
    variants = [("before", args.before), ("ccvault", None)] if args.before else [("ccvault", None)]
    # Not shared: one pipeline per session. A shared file-backed media crashed the server
    # (gst-rtsp-server 1.22: "backlog_push: assertion failed: (queue_duration >= 0)") once
    # ~20 sessions joined it; stream copy costs the server little per session.
    server = RtspServer(paths=("/cam",), shared=False, file=ensure_clip())
    runs = []
    try:
        server.start()
        srv = psutil.Process(server.pid)
        print(f"N = {n} cameras (RTSP server pid {server.pid}, {server.url('/cam')})", flush=True)
        bare = [bare_window(n, args, srv, server.url("/cam"), "")]
        measured = []
        for label, source in variants:
            fresh_work()
            measured.append((label, *measure_ccvault(server.url("/cam"), n, args, srv, source)))
        bare.append(bare_window(n, args, srv, server.url("/cam"), " again, after ccvault"))
        base = bracketed(bare)
        print(f"  bare ffmpeg, the mean of both windows: {base['per_camera_pct']:.3f} % per camera")
        for label, window, result in measured:
            runs.append(report(n, label, base, window, result, args))
    finally:
        server.stop()
    return {**runs[-1], "before": runs[0] if len(runs) > 1 else None}


def bare_window(n: int, args: argparse.Namespace, srv: psutil.Process, url: str,
                when: str) -> dict[str, Any]:  # fmt: skip
    fresh_work()
    base = baseline(url, n, args.segment_seconds, args.warmup, args.seconds, srv)
    print(
        f"  bare ffmpeg -c copy x {n}{when}: {base['pct']:.2f} % of one core = "
        f"{base['per_camera_pct']:.3f} % per camera ({base['window_s']:.0f} s window, "
        f"{base['exited']} exited); measured under {load_text(base['machine'])}",
        flush=True,
    )
    return base


def bracketed(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The baseline as the mean of its windows before and after the daemon's: the machine
    drifts (a quiet machine's two windows of one run read 0.440 and 0.393 % per camera)."""
    return {
        "pct": statistics.fmean(w["pct"] for w in windows),
        "per_camera_pct": statistics.fmean(w["per_camera_pct"] for w in windows),
        "windows_per_camera_pct": [round(w["per_camera_pct"], 3) for w in windows],
        "machine": max((w["machine"] for w in windows), key=lambda m: m.others_pct),
    }


def fresh_work() -> None:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)


def report(n: int, label: str, base: dict[str, Any], window: Window, result: dict[str, Any],
           args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """Print one daemon's figures beside the baseline's; says whether it kept up."""
    total = pct(sum(window.cpu.values()), window.wall)
    per_cam = total / n
    ratio = per_cam / base["per_camera_pct"]
    rec_ratio = pct(window.cpu.get("ffmpeg", 0.0) + window.cpu.get("daemon (python)", 0.0),
                    window.wall) / n / base["per_camera_pct"]  # fmt: skip
    recording = sum(window.threads.get(name, 0.0) for name in RECORDING_THREADS)
    recorders_ratio = pct(window.cpu.get("ffmpeg", 0.0), window.wall) / n / base["per_camera_pct"]
    path_ratio = (
        pct(window.cpu.get("ffmpeg", 0.0) + recording, window.wall) / n / base["per_camera_pct"]
    )
    threads = ", ".join(
        f"{name} {pct(cpu, window.wall):.2f} %"
        for name, cpu in sorted(window.threads.items(), key=lambda kv: -kv[1])
        if pct(cpu, window.wall) >= 0.05
    )
    fp, bl, rt = result["footage"], result["backlog"], result["retention"]
    lat = result["ingest_latency"]
    keeps_up = fp["lost"] == 0 and fp["gaps"] == 0 and bl["bounded"] and rt["on_time"]
    split = ", ".join(f"{k} {pct(v, window.wall):.2f} %" for k, v in sorted(window.cpu.items()))
    source = f" (source {args.before})" if label == "before" else ""
    print(f"  {label}{source}: ccvault run {total:.2f} % of one core = {per_cam:.3f} % per "
          f"camera ({window.wall:.0f} s window; {split})")  # fmt: skip
    print(f"    ratio to bare ffmpeg: {ratio:.2f}x with motion analysis; recording alone "
          f"(daemon + recorders, no motion workers) {rec_ratio:.2f}x")  # fmt: skip
    print(f"    the daemon by thread: {threads}; the recording path alone (recorders + the "
          f"{', '.join(RECORDING_THREADS)} threads) {path_ratio:.2f}x")  # fmt: skip
    threads_ratio = pct(recording, window.wall) / n / base["per_camera_pct"]
    print(f"    of which the recorders {recorders_ratio:.2f}x bare, and the daemon's recording "
          f"threads {threads_ratio:.3f}x bare")  # fmt: skip
    print(f"    measured under {load_text(window.machine)} (RTSP server "
          f"{window.server_pct:.1f} %, not counted)")  # fmt: skip
    print(f"    segments: {fp['listed']} listed by the recorders, {fp['stored']} stored "
          f"(per camera {fp['per_camera_stored']}), lost {fp['lost']}, gaps {fp['gaps']}, "
          f"quarantined {result['quarantined']}; ingest latency p50 {lat['p50_s']:.2f} s, "
          f"max {lat['max_s']:.2f} s")  # fmt: skip
    print(f"    analysis backlog (segments waiting): {bl['start']} at the window start, "
          f"{bl['end']} at its end, max {bl['max']}, trend {bl['slope_per_min']:+.1f}/min: "
          f"{'bounded' if bl['bounded'] else 'GROWING'}")  # fmt: skip
    print(f"    retention passes: {rt['count']} (every {args.retention_every:g} s), median "
          f"{rt['seconds_median']:.3f} s, max {rt['seconds_max']:.3f} s, latest start "
          f"+{rt['late_max_s']:.1f} s: {'on time' if rt['on_time'] else 'LATE'}")  # fmt: skip
    print(f"    recorder starts {result['recorder_starts']} (N at start-up), exits "
          f"{result['recorder_exits']}; daemon exit {result['exit']}")  # fmt: skip
    print(f"    N = {n} ({label}): {'keeps up' if keeps_up else 'FALLS BEHIND'}", flush=True)
    return {
        "cameras": n,
        "keeps_up": keeps_up,
        "ccvault_per_camera_pct": round(per_cam, 3),
        "bare_per_camera_pct": round(base["per_camera_pct"], 3),
        "bare_windows_per_camera_pct": base["windows_per_camera_pct"],
        "recorders_ratio": round(recorders_ratio, 3),
        "ratio": round(ratio, 2),
        "recording_ratio": round(rec_ratio, 2),
        "recording_path_ratio": round(path_ratio, 2),
        "daemon_threads_pct": {k: round(pct(v, window.wall), 2) for k, v in window.threads.items()},
        "cpu_pct": {k: round(pct(v, window.wall), 2) for k, v in window.cpu.items()},
        "load": [round(x, 2) for x in window.machine.load],
        "others_pct": round(window.machine.others_pct, 1),
        "baseline_others_pct": round(base["machine"].others_pct, 1),
        **result,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 cameras, 30 s windows (smoke run)")
    ap.add_argument("--cameras", default=None, help="comma-separated N (default 8,16,32,64)")
    ap.add_argument("--seconds", type=float, default=None, help="window (default 120)")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up (default 15)")
    ap.add_argument("--segment-seconds", type=int, default=10)
    ap.add_argument("--retention-every", type=float, default=30.0)
    ap.add_argument(
        "--workers", type=int, default=None, help="[motion] workers (default: ccvault's)"
    )
    ap.add_argument(
        "--before",
        type=Path,
        default=None,
        help="a directory holding another ccvault/ source tree (e.g. `git archive main ccvault`"
        " unpacked): its daemon is measured first, beside this one, in the same run",
    )
    ap.add_argument("--all", action="store_true", help="go on after an N that falls behind")
    ap.add_argument("--keep", action="store_true", help=f"keep {WORK} afterwards")
    args = ap.parse_args(argv)
    counts = [int(x) for x in (args.cameras or ("4" if args.quick else "8,16,32,64")).split(",")]
    args.seconds = args.seconds or (30.0 if args.quick else 120.0)
    args.warmup = args.warmup if args.warmup is not None else (10.0 if args.quick else 15.0)
    version = ccvault_version()
    print(
        f"bench/capacity.py — cameras {counts}, 1080p15 ~3 Mbit/s H.264 served by stream copy, "
        f"{args.segment_seconds} s segments, {args.seconds:.0f} s windows after "
        f"{args.warmup:.0f} s warm-up, retention pass every {args.retention_every:g} s, "
        f"motion workers {args.workers or 'default'}; "
        f"ccvault {version}; {os.cpu_count()} CPUs; load average before "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        flush=True,
    )
    results = []
    if args.before is not None and not (args.before / "ccvault" / "__init__.py").exists():
        ap.error(f"--before {args.before}: no ccvault/ source tree there")
    try:
        for n in counts:
            results.append(run_one(n, args))
            if not results[-1]["keeps_up"] and not args.all:
                break
    finally:
        remove_work(WORK, args.keep)
    good = [r["cameras"] for r in results if r["keeps_up"]]
    largest = max(good) if good and results[0]["keeps_up"] else 0
    print(f"RESULT: largest N at which nothing falls behind: {largest} (tried "
          f"{[r['cameras'] for r in results]})")  # fmt: skip
    print(json.dumps({"bench": "capacity", "ccvault": version, "quick": args.quick,
                      "segment_seconds": args.segment_seconds, "largest_n": largest,
                      "runs": results}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
