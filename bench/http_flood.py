"""Benchmark: recording goes on while the HTTP API is flooded (issue 14, item 4).

What it measures
    The real daemon (``ccvault run``) records 8 live RTSP cameras while, on loopback, 2,000
    slow-header connections and 100 oversized request bodies hit its API for 60 s. Figures:
    segments lost (every segment the recorders listed must have its catalog row), the
    daemon's peak RSS and open descriptors before and during the attack, ingest latency (a
    segment's end to its ``segment.ingested``), and whether a legitimate client's requests
    still answer. Targets: zero segments lost; RSS peak within 64 MiB of the peak before the
    attack; every legitimate request answered 200.

How
    - Cameras: ``tests.peers.RtspServer`` (gst-rtsp-server), one shared live stream
      (640x360, 15 fps, ~800 kbit/s H.264, a keyframe a second) that all cameras pull, as
      bench/record_cpu.py does (smaller: this measures the API's defences, not recording's CPU).
      ``segment_seconds = 2``: many segments, so a stalled ingest shows at once. Motion off.
    - The daemon runs under ``prlimit --nofile=1024:N``, N the unit's ``LimitNOFILE=``: the
      soft limit systemd would give without the unit's line; the daemon raises it itself.
      ``[http]`` keeps its defaults (512 connections, 64 per client, 10 s request timeout,
      64 KiB bodies). A viewer's token comes from ``ccvault user add``.
    - The attack (asyncio in this process, bounded in count and time):
      * 2,000 slowloris tasks, spread over 64 loopback addresses (127.1.0.1-64, ~31 each: under
        the per-client cap, so they fill the server's total instead): each opens a connection,
        sends half a request line and then one header byte a second; when the server closes
        it (408 after the request timeout, 503 when refused or evicted at the cap) it opens
        another, until the window ends.
      * 100 oversized bodies from 127.0.0.1: ``POST /api/holds`` without credentials,
        ``Content-Length`` 300 MiB, the body streamed in 64 KiB pieces every 50 ms until the
        server answers or closes; tried again while the answer is 503 (server full).
    - Two legitimate clients ask ``GET /api/segments`` (one camera, last 2 minutes, bearer
      token) every 0.5 s, before, during and after the attack: from 127.0.0.2 over one
      kept-alive connection (a page left open), from 127.0.0.3 over a new connection each
      time (someone arriving during the attack, who must win a connection slot).
    - Every 0.5 s: the daemon's RSS and descriptor count (psutil), and a copy of every
      ``segments.csv`` in the spool (ffmpeg's list of finished segments; ingest deletes a
      run's list when the run ends, so the copies are what "the recorders listed").
    - Afterwards the daemon gets SIGTERM; each listed segment must have a catalog row of its
      camera ending at the listed end (± 2 s, as ingest takes it).

Run: ``.venv/bin/python bench/http_flood.py [--quick] [--keep]``. ``--quick`` = 2 cameras,
200 slow connections, 10 bodies, a 15 s attack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from common import ccvault_version, remove_work  # bench/common.py

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from ccvault.ingest.spool import LIST_FILE, LIST_TOLERANCE_MS, read_list  # noqa: E402
from tests.peers import RtspServer  # noqa: E402

OUT = REPO / "bench" / "out"
WORK = OUT / "http-flood"
CCVAULT = REPO / ".venv" / "bin" / "ccvault"
SEGMENT_S = 2
RSS_BOUND_MIB = 64
BODY_CLAIM = 300 << 20
ATTACK_ADDRESSES = 64
SAMPLE_S = 0.5


def wall_s(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "p99": round(p99, 3),
        "max": round(ordered[-1], 3),
    }


# -- the daemon --------------------------------------------------------------------------


def write_config(work: Path, url: str, cameras: int) -> Path:
    lines = [
        'timezone = "UTC"',
        "[recording]",
        f"segment_seconds = {SEGMENT_S}",
        "[motion]",
        "enabled = false",
        "[storage]",
        f'catalog = "{work / "catalog.sqlite"}"',
        "[[storage.volumes]]",
        'name = "hot"',
        f'path = "{work / "volume"}"',
        'role = "hot"',
        "[http]",
        'listen = "127.0.0.1:0"',
    ]
    for i in range(1, cameras + 1):
        lines += ["[[cameras]]", f'name = "cam{i}"', f'url = "{url}"']
    path = work / "ccvault.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def unit_limit() -> int:
    text = (REPO / "systemd" / "ccvault.service").read_text()
    return int(re.findall(r"^LimitNOFILE=(\d+)$", text, re.M)[-1])


class Log:
    """The daemon's JSON log (stdout, redirected to a file), read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path, self.pos, self.events = path, 0, []

    def poll(self) -> list[dict[str, Any]]:
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        self.pos += cut
        new = []
        for line in data[:cut].decode(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                new.append(event)
        self.events += new
        return new


def start_daemon(cfg: Path, cameras: int, hard: int) -> tuple[subprocess.Popen[bytes], Log, str]:
    log_path = WORK / "daemon.log.jsonl"
    with open(log_path, "wb") as out, open(WORK / "daemon.stderr", "wb") as err:
        proc = subprocess.Popen(
            ["prlimit", f"--nofile=1024:{hard}", "--", str(CCVAULT), "--config", str(cfg), "run"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    log, recording, url = Log(log_path), set(), ""
    names = {f"cam{i}" for i in range(1, cameras + 1)}
    deadline = time.monotonic() + 120
    while recording != names or not url:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(
                f"daemon not ready (exit {proc.poll()}, recording {sorted(recording)}): "
                + (WORK / "daemon.stderr").read_text()[-2000:]
                + "\n".join(json.dumps(e)[:300] for e in log.events[-15:])
            )
        for ev in log.poll():
            if ev.get("event") == "camera.state" and ev.get("new") == "recording":
                recording.add(str(ev.get("camera")))
            if ev.get("event") == "http.listening":
                url = str(ev["url"])
        time.sleep(0.25)
    return proc, log, url


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM (the daemon closes and ingests the open segments), SIGKILL after 60 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


# -- what goes on during the run ---------------------------------------------------------


@dataclass
class Samples:
    """The daemon's memory and descriptors, the spool's lists, the legitimate requests."""

    proc: psutil.Process
    spool: Path
    rss: list[tuple[float, int]] = field(default_factory=list)
    fds: list[tuple[float, int]] = field(default_factory=list)
    listed: dict[tuple[str, str, str], int] = field(default_factory=dict)  # → end_ms
    # client → (t, status, seconds) of each of its requests
    requests: dict[str, list[tuple[float, int, float]]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def watch(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            now = time.monotonic()
            try:
                self.rss.append((now, self.proc.memory_info().rss))
                self.fds.append((now, self.proc.num_fds()))
            except psutil.NoSuchProcess:
                return
            for lst in self.spool.glob(f"*/*/{LIST_FILE}"):
                for entry in read_list(lst):
                    key = (lst.parent.parent.name, lst.parent.name, entry.name)
                    self.listed[key] = entry.end_ms

    def ask(self, url: str, token: str, source: str, fresh: bool) -> None:
        """A legitimate client: one connection kept alive (a page left open), or a new
        connection for every request (someone arriving during the attack)."""
        name = "new connection each" if fresh else "kept alive"
        mine = self.requests.setdefault(name, [])
        headers = {"Authorization": f"Bearer {token}"}
        params = {"camera": "cam1", "from": "-2m", "to": "now"}

        def client() -> httpx.Client:
            transport = httpx.HTTPTransport(local_address=source)
            return httpx.Client(base_url=url, transport=transport, headers=headers, timeout=10)

        kept = client()
        while not self.stop.wait(SAMPLE_S):
            started = time.monotonic()
            try:
                if fresh:
                    with client() as once:
                        status = once.get("/api/segments", params=params).status_code
                else:
                    status = kept.get("/api/segments", params=params).status_code
            except httpx.HTTPError:
                status = 0
            mine.append((started, status, time.monotonic() - started))
        kept.close()


# -- the attack --------------------------------------------------------------------------


@dataclass
class Attack:
    host: str
    port: int
    until: float
    outcomes: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    open_now: int = 0
    open_peak: int = 0
    # per oversized body: its final answer, bytes sent before it, connections it took
    bodies: list[tuple[int | None, int, int]] = field(default_factory=list)

    async def slowloris(self, source: str) -> None:
        while time.monotonic() < self.until:
            self.connects += 1
            try:
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, local_addr=(source, 0)
                )
            except OSError:
                self.outcomes["connect failed"] += 1
                await asyncio.sleep(0.5)
                continue
            self.open_now += 1
            self.open_peak = max(self.open_peak, self.open_now)
            self.outcomes[await self._trickle(reader, writer)] += 1
            self.open_now -= 1
            writer.close()
            await asyncio.sleep(0.2)

    async def _trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """Half a request, then a header byte a second; how the server ended it."""
        try:
            writer.write(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
            while time.monotonic() < self.until:
                try:
                    got = await asyncio.wait_for(reader.read(256), 1.0)
                except TimeoutError:
                    writer.write(b"a")
                    continue
                return answer(got)
            return "still open at the end"
        except OSError:
            return "reset"

    async def oversized(self, source: str) -> None:
        """A POST claiming 300 MiB, its body streamed slowly until the server answers or
        hangs up; tried again while the server is too busy to take it (503)."""
        status, sent, tries = None, 0, 0
        while time.monotonic() < self.until and status in (None, 503):
            tries += 1
            status, sent = await self._one_body(source)
            if status == 503:
                await asyncio.sleep(0.2)
        self.bodies.append((status, sent, tries))

    async def _one_body(self, source: str) -> tuple[int | None, int]:
        sent = 0
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, local_addr=(source, 0)
            )
            writer.write(
                b"POST /api/holds HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                b"\r\nContent-Length: %d\r\n\r\n" % BODY_CLAIM
            )
            piece = b" " * 65536
            while sent < BODY_CLAIM and time.monotonic() < self.until:
                try:
                    got = await asyncio.wait_for(reader.read(4096), 0.05)
                except TimeoutError:
                    writer.write(piece)
                    await writer.drain()
                    sent += len(piece)
                    continue
                writer.close()
                return (int(got.split()[1]) if got.startswith(b"HTTP/") else None), sent
            writer.close()
        except (OSError, ValueError, IndexError):
            pass
        return None, sent

    async def run(self, slow: int, big: int) -> None:
        sources = [f"127.1.0.{1 + i % ATTACK_ADDRESSES}" for i in range(slow)]
        tasks = [self.slowloris(s) for s in sources]
        tasks += [self.oversized("127.0.0.1") for _ in range(big)]
        await asyncio.gather(*tasks)


def answer(got: bytes) -> str:
    if not got:
        return "closed"
    parts = got.split()
    return f"answered {parts[1].decode()}" if len(parts) > 1 else "closed"


# -- what it found -----------------------------------------------------------------------


def lost_segments(catalog: Path, listed: dict[tuple[str, str, str], int]) -> list[str]:
    """Listed segments without a catalog row of their camera ending at the listed end."""
    conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    ends: dict[str, list[int]] = {}
    for camera, end_ms in conn.execute(
        "SELECT c.name, s.end_ms FROM segments s JOIN cameras c ON c.id = s.camera_id"
    ):
        ends.setdefault(camera, []).append(end_ms)
    conn.close()
    return [
        f"{camera}/{run}/{name}"
        for (camera, run, name), end_ms in sorted(listed.items())
        if not any(abs(e - end_ms) <= LIST_TOLERANCE_MS for e in ends.get(camera, ()))
    ]


def phase_of(t: float, phases: dict[str, tuple[float, float]]) -> str | None:
    return next((name for name, (lo, hi) in phases.items() if lo <= t < hi), None)


def by_phase(
    samples: list[tuple[float, int]], phases: dict[str, tuple[float, float]]
) -> dict[str, int]:
    peak: dict[str, int] = {}
    for t, value in samples:
        name = phase_of(t, phases)
        if name is not None:
            peak[name] = max(peak.get(name, 0), value)
    return peak


def ingest_lags(
    events: list[dict[str, Any]], phases: dict[str, tuple[float, float]], clock: tuple[float, float]
) -> dict[str, dict[str, float]]:
    """Seconds from a segment's end to its `segment.ingested`, by phase of the event."""
    wall0, mono0 = clock
    lags: dict[str, list[float]] = {name: [] for name in phases}
    for e in events:
        if e.get("event") != "segment.ingested":
            continue
        at = wall_s(e["timestamp"])
        name = phase_of(mono0 + at - wall0, phases)
        if name is not None:
            lags[name].append(at - (e["start_ms"] + e["duration_ms"]) / 1000)
    return {name: pcts(values) for name, values in lags.items()}


def legit_by_phase(
    requests: list[tuple[float, int, float]], phases: dict[str, tuple[float, float]]
) -> dict[str, dict[str, Any]]:
    out = {}
    for name in phases:
        mine = [(status, s) for t, status, s in requests if phase_of(t, phases) == name]
        out[name] = {
            "requests": len(mine),
            "ok": sum(1 for status, _ in mine if status == 200),
            "statuses": {str(k): v for k, v in Counter(status for status, _ in mine).items()},
            "latency_ms": pcts([s * 1000 for _, s in mine]),
        }
    return out


def legit_ok(legit: dict[str, dict[str, dict[str, Any]]]) -> bool:
    return all(
        got["ok"] == got["requests"] > 0 for phases in legit.values() for got in phases.values()
    )


def daemon_counts(events: list[dict[str, Any]]) -> dict[str, int]:
    """The daemon's http.connections_refused/_dropped counts, summed by reason."""
    kind = {"http.connections_refused": "refused", "http.connections_dropped": "dropped"}
    total: Counter[str] = Counter()
    for e in events:
        if e.get("event") in kind:
            for reason in ("total", "per_client", "headers", "body", "evicted"):
                total[f"{kind[e['event']]} {reason}"] += int(e.get(reason, 0))
    return {k: v for k, v in total.items() if v}


# -- the run -----------------------------------------------------------------------------


def attack_between_calms(
    args: argparse.Namespace, url: str
) -> tuple[dict[str, tuple[float, float]], Attack]:
    """The calm before, the attack, the calm after: their monotonic bounds, and the attack."""
    t0 = time.monotonic()
    time.sleep(args.calm)
    t1 = time.monotonic()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    attack = Attack(host, int(port), t1 + args.seconds)
    asyncio.run(attack.run(args.slow, args.big))
    t2 = time.monotonic()
    time.sleep(args.calm)
    return {"before": (t0, t1), "attack": (t1, t2), "after": (t2, time.monotonic())}, attack


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 cameras, 200 + 10 attackers, 15 s")
    ap.add_argument("--cameras", type=int, help="cameras (default 8)")
    ap.add_argument("--slow", type=int, help="slow-header connections (default 2000)")
    ap.add_argument("--big", type=int, help="oversized bodies (default 100)")
    ap.add_argument("--seconds", type=float, help="attack window (default 60)")
    ap.add_argument("--keep", action="store_true", help=f"keep {WORK} afterwards")
    args = ap.parse_args(argv)
    args.cameras = args.cameras or (2 if args.quick else 8)
    args.slow = args.slow or (200 if args.quick else 2000)
    args.big = args.big or (10 if args.quick else 100)
    args.seconds = args.seconds or (15.0 if args.quick else 60.0)
    args.calm = 8.0 if args.quick else 20.0  # before and after the attack
    return args


def user_token(cfg: Path) -> str:
    done = subprocess.run(
        [str(CCVAULT), "--config", str(cfg), "user", "add", "bench", "--role", "viewer"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def run(args: argparse.Namespace, server: RtspServer) -> dict[str, Any]:
    """Start the daemon, measure the calm, the attack and the calm after; stop it."""
    cfg = write_config(WORK, server.url("/cam"), args.cameras)
    token = user_token(cfg)
    hard = unit_limit()
    proc, log, url = start_daemon(cfg, args.cameras, hard)
    try:
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        soft = int(re.search(r"^Max open files\s+(\d+)", limits, re.M).group(1))  # type: ignore[union-attr]
        samples = Samples(psutil.Process(proc.pid), WORK / "volume" / ".spool")
        threads = [
            threading.Thread(target=samples.watch),
            threading.Thread(target=samples.ask, args=(url, token, "127.0.0.2", False)),
            threading.Thread(target=samples.ask, args=(url, token, "127.0.0.3", True)),
        ]
        clock = (time.time(), time.monotonic())
        for thread in threads:
            thread.start()
        try:
            phases, attack = attack_between_calms(args, url)
        finally:
            rc = stop(proc)
            samples.stop.set()
            for thread in threads:
                thread.join()
    finally:
        stop(proc)
    log.poll()
    return {
        "exit": rc,
        "soft_limit": soft,
        "hard_limit": hard,
        "phases": {k: round(hi - lo, 1) for k, (lo, hi) in phases.items()},
        "attack": attack,
        "listed": len(samples.listed),
        "lost": lost_segments(WORK / "catalog.sqlite", samples.listed),
        "ingested": sum(1 for e in log.events if e.get("event") == "segment.ingested"),
        "rss": by_phase(samples.rss, phases),
        "fds": by_phase(samples.fds, phases),
        "lag": ingest_lags(log.events, phases, clock),
        "legit": {k: legit_by_phase(v, phases) for k, v in samples.requests.items()},
        "dropped": daemon_counts(log.events),
        "too_many_files": sum(1 for e in log.events if "Too many open files" in json.dumps(e)),
    }


def report(args: argparse.Namespace, found: dict[str, Any], version: str) -> bool:
    attack: Attack = found["attack"]
    mib = {k: round(v / (1 << 20), 1) for k, v in found["rss"].items()}
    legit = found["legit"]
    bodies = Counter(status for status, _, _ in attack.bodies)
    body_sent = [sent for _, sent, _ in attack.bodies]
    body_tries = sum(tries for _, _, tries in attack.bodies)
    print(
        f"daemon: open files soft limit {found['soft_limit']} (started at 1024, hard "
        f"{found['hard_limit']} = the unit's LimitNOFILE); exit {found['exit']} on SIGTERM"
    )
    print(f"phases (s): {found['phases']}")
    print(
        f"attack: {args.slow} slowloris tasks over {ATTACK_ADDRESSES} addresses, "
        f"{attack.connects} connections opened, at most {attack.open_peak} open at once; "
        f"ends: {dict(attack.outcomes)}"
    )
    print(
        f"  {args.big} oversized bodies (claiming {BODY_CLAIM >> 20} MiB), tried again while "
        f"answered 503 ({body_tries} connections): final answers {dict(bodies)}, sent before "
        f"the answer: max {max(body_sent, default=0) >> 10} KiB"
    )
    print(f"  the daemon's own counts (logged every 10 s at most): {found['dropped']}")
    print(f"daemon RSS peak (MiB): {mib}; open descriptors peak: {found['fds']}")
    print(f"ingest latency (s, segment end to segment.ingested): {found['lag']}")
    for client, phases in legit.items():
        for name, got in phases.items():
            print(
                f"legitimate client ({client}), {name}: {got['ok']}/{got['requests']} answered "
                f"200 ({got['statuses']}), latency ms {got['latency_ms']}"
            )
    print(
        f"segments: {found['listed']} listed by the recorders, {found['ingested']} ingested "
        f"events, {len(found['lost'])} lost {found['lost'][:5]}; 'Too many open files' in "
        f"the log: {found['too_many_files']}"
    )
    lost_ok = not found["lost"] and found["listed"] > 0 and found["exit"] == 0
    rss_growth = mib.get("attack", 0) - mib.get("before", 0)
    rss_ok = rss_growth <= RSS_BOUND_MIB
    answered = legit_ok(legit)
    for ok, text in (
        (lost_ok, f"segments lost: {len(found['lost'])} of {found['listed']} listed"),
        (
            rss_ok,
            f"daemon RSS peak {mib.get('attack')} MiB under attack vs {mib.get('before')} MiB "
            f"before (+{rss_growth:.1f} MiB, bound +{RSS_BOUND_MIB} MiB)",
        ),
        (
            answered,
            "legitimate requests answered 200: "
            + "; ".join(
                f"{client}: " + ", ".join(f"{k} {v['ok']}/{v['requests']}" for k, v in p.items())
                for client, p in legit.items()
            ),
        ),
    ):
        print(f"RESULT: {text}: {'PASS' if ok else 'FAIL'}")
    print(
        json.dumps(
            {
                "bench": "http_flood",
                "ccvault": version,
                "quick": args.quick,
                "cameras": args.cameras,
                "slow_connections": args.slow,
                "oversized_bodies": args.big,
                "attack_s": found["phases"]["attack"],
                "connections_opened": attack.connects,
                "attacker_open_peak": attack.open_peak,
                "slow_outcomes": dict(attack.outcomes),
                "body_answers": {str(k): v for k, v in bodies.items()},
                "body_connections": body_tries,
                "body_max_sent_kib": max(body_sent, default=0) >> 10,
                "soft_limit": found["soft_limit"],
                "rss_mib": mib,
                "fds_peak": found["fds"],
                "ingest_lag_s": found["lag"],
                "legit": legit,
                "listed": found["listed"],
                "lost": len(found["lost"]),
                "too_many_files": found["too_many_files"],
                "pass": lost_ok and rss_ok and answered,
            }
        )
    )
    return lost_ok and rss_ok and answered


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"bench/http_flood.py — {args.cameras} cameras recording while {args.slow} slow "
        f"connections and {args.big} oversized bodies hit the API for {args.seconds:.0f} s"
    )
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    print("load average before the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    version = ccvault_version()
    print(f"ccvault source: {version}")
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    server = RtspServer(width=640, height=360, fps=15, bitrate_kbps=800, keyint=15)
    try:
        try:
            server.start()
            found = run(args, server)
        finally:
            server.stop()
        print("load average after the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        return 0 if report(args, found, version) else 1
    finally:
        remove_work(WORK, args.keep)


if __name__ == "__main__":
    sys.exit(main())
