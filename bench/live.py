"""Benchmark: live view latency and CPU per live viewer (issue 18 item 1).

What it measures
    With the real daemon (`ccvault run`) recording one live RTSP camera (tests.peers.RtspServer:
    1280x720, 15 fps, ~2000 kbit/s H.264 `snow`, a keyframe every 2 s; 10 s segments, motion
    analysis off), and N = 0, 1, 4, 8 live viewers reading `GET /api/cameras/cam/live` at once
    (HTTP clients in this process, on loopback):
    - latency, source to fragment: for every frame, when a viewer received the fragment that
      holds it, less when a direct RTSP client of the same shared camera stream received the
      frame (tests/live_client.py: each frame found by its own bytes; on loopback the direct
      client gets a frame as the server sends it). p50 / p99 / max per N, all viewers pooled.
      What this leaves out: the camera's encoder and the browser's decode and paint (the
      Chromium test shows the page plays `data-behind` < 3 s behind its newest fragment).
    - CPU: user + system time of the daemon's process tree (the daemon and its ffmpeg
      recorder; this process's clients excluded) over a window of `--seconds`, as % of one
      core; per viewer = (CPU with N viewers − CPU with none) / N. Baseline: the same
      recording with `[recording] live_view = false` (viewers refused); with no viewer the two
      do the same work (live view reads the segment files only while someone watches).
    Target (the issue): ≤ 3 s behind on loopback.

Run: `.venv/bin/python bench/live.py [--quick] [--seconds S]` (`--quick`: 8 s windows).
Prints `uptime` before and after: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from common import ccvault_version, remove_work  # bench/common.py

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.conftest import Daemon, run_cli, write_config  # noqa: E402
from tests.live_client import Received, direct_arrivals, latencies  # noqa: E402
from tests.peers import RtspServer  # noqa: E402

WORK = REPO / "bench" / "out" / "live"
VIEWERS = (0, 1, 4, 8)
TARGET_S = 3.0


def tree_cpu(root: psutil.Process) -> float:
    """CPU seconds of a process and its descendants (reaped children included)."""
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def phase(daemon: Daemon, url: str, token: str, rtsp: str, viewers: int, seconds: float) -> dict:
    """N viewers for a warm-up and a measured window: CPU share and each frame's latency."""
    stop, direct = threading.Event(), []
    source = threading.Thread(target=direct_arrivals, args=(rtsp, stop, direct), daemon=True)
    source.start()
    clients = [Received() for _ in range(viewers)]
    threads = [
        threading.Thread(
            target=c.read, args=(url, {"authorization": f"Bearer {token}"}), daemon=True
        )
        for c in clients
    ]
    for thread in threads:
        thread.start()
    time.sleep(3)  # warm-up: the viewers joined, the newcomers' keyframe burst is sent
    assert daemon.proc is not None
    root = psutil.Process(daemon.proc.pid)
    before, t0 = tree_cpu(root), time.monotonic()
    time.sleep(seconds)
    cpu, wall = tree_cpu(root) - before, time.monotonic() - t0
    stop.set()
    for client in clients:
        client.stop.set()
    for thread in [*threads, source]:
        thread.join(15)
    found = sorted(x for c in clients for x in latencies(direct, c))
    dropped = sum(c.ended for c in clients)
    got = sum(len(c.data) for c in clients) / max(1, viewers)
    return {
        "viewers": viewers,
        "cpu_pct": 100 * cpu / wall,
        "latency_s": found,
        "ended": dropped,
        "kbit_s": round(got * 8 / 1000 / (seconds + 3)),  # each viewer's, warm-up included
    }


def summary(found: list[float]) -> dict:
    if not found:
        return {}
    return {
        "frames": len(found),
        "p50_s": round(statistics.median(found), 3),
        "p99_s": round(found[min(len(found) - 1, int(0.99 * len(found)))], 3),
        "max_s": round(found[-1], 3),
    }


def setup(root: Path, rtsp: str, recording: str) -> tuple[Path, str]:
    """A config recording the camera in its own directory, and a viewer's token."""
    root.mkdir(parents=True)
    config = write_config(root, [{"name": "cam", "url": rtsp}], segment_seconds=10)
    text = config.read_text().replace("[recording]\n", "[recording]\n" + recording)
    config.write_text(text + "\n[motion]\nenabled = false\n")
    token = run_cli(config, "user", "add", "bench", "--role", "viewer").stdout.strip()
    return config, token


def measured(config: Path, token: str, rtsp: str, counts: tuple[int, ...], seconds: float) -> list:
    """A daemon recording the camera, measured with each number of viewers in turn."""
    daemon = Daemon(config).start()
    results = []
    try:
        url = daemon.wait_event("http.listening", 10)["url"] + "/api/cameras/cam/live"
        daemon.wait_event("camera.state", 60, camera="cam", new="recording")
        time.sleep(5)
        for n in counts:
            got = phase(daemon, url, token, rtsp, n, seconds)
            results.append(got)
            print(
                f"{n} viewer(s): daemon tree {got['cpu_pct']:.1f} % of a core; latency "
                f"{summary(got['latency_s']) or 'n/a'}; {got['kbit_s']} kbit/s per viewer; "
                f"streams ended early: {got['ended']}"
            )
    finally:
        daemon.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 s windows")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per N")
    parser.add_argument("--keep", action="store_true", help="keep bench/out/live")
    args = parser.parse_args()
    seconds = 8.0 if args.quick else args.seconds
    remove_work(WORK, keep=False)
    WORK.mkdir(parents=True)
    print(f"ccvault {ccvault_version()}; load before: {uptime()}")
    camera = RtspServer(
        width=1280, height=720, fps=15, keyint=30, bitrate_kbps=2000, pattern="snow"
    ).start()
    rtsp = f"rtsp://127.0.0.1:{camera.port}/cam"
    results = []
    try:
        # Baseline: the same recording with live viewers refused ([recording] live_view = false).
        # Each daemon gets a directory of its own: a daemon started again on the same catalog
        # spends several % of a core in one thread for its first minute (seen, not live view's).
        config, token = setup(WORK / "off", rtsp, "live_view = false\n")
        without = measured(config, token, rtsp, (0,), seconds)[0]
        print(f"live_view = false: daemon tree {without['cpu_pct']:.1f} % of a core")
        config, token = setup(WORK / "on", rtsp, "")
        results = measured(config, token, rtsp, VIEWERS, seconds)
    finally:
        camera.stop()
        remove_work(WORK, args.keep)
    base = results[0]["cpu_pct"]
    per_viewer = {r["viewers"]: (r["cpu_pct"] - base) / r["viewers"] for r in results[1:]}
    pooled = sorted(x for r in results for x in r["latency_s"])
    print(
        "CPU per viewer (% of one core): "
        + ", ".join(f"N={n}: {v:.2f}" for n, v in per_viewer.items())
    )
    verdict = "PASS" if pooled and summary(pooled)["p99_s"] <= TARGET_S else "FAIL"
    print(f"latency, all phases pooled: {summary(pooled)}; target p99 <= {TARGET_S} s: {verdict}")
    print(f"load after: {uptime()}")
    line = {
        "bench": "live",
        "window_s": seconds,
        "live_view_off_cpu_pct": round(without["cpu_pct"], 2),
        "idle_cpu_pct": round(base, 2),
        "cpu_per_viewer_pct": {str(n): round(v, 2) for n, v in per_viewer.items()},
        "latency": {str(r["viewers"]): summary(r["latency_s"]) for r in results[1:]},
        "latency_pooled": summary(pooled),
        "verdict": verdict,
    }
    print(json.dumps(line))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
