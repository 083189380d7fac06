"""Disk pressure end to end: a small real filesystem (a tmpfs the test mounts) filled by real
recording, and the daemon's own pressure check keeping it from running full.

What a user would notice is asserted: recording never stops, the disk never reaches zero,
held footage is untouched, the premature deletions are reported, and the store is consistent
afterwards. Needs root (to mount the tmpfs); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ccvault.daemon import PRESSURE_EVERY_S
from ccvault.timefmt import utc_text
from tests.conftest import Daemon, cli_json, run_cli, wait_for, write_config
from tests.retention_seed import DAY_MS, Seeded, seed

MIB = 1 << 20
RESERVE = 8 * MIB
SEGMENT_S = 2
# Recording is judged on windows this long, after this warm-up (first connect, first cut).
WINDOW_S = 10
WARM_UP_S = 8
NO_SPACE = ("No space left", "ENOSPC", "Errno 28", "Disk quota")
# Warnings and errors a full disk must not cause; the expected alerts are not among them.
TROUBLE = {"segment.quarantined", "ingest.scan_failed", "ingest.no_volume",
           "scheduler.job_failed", "scheduler.job_missed", "recorder.exited",
           "recorder.tick_failed", "recorder.kill", "recorder.ffmpeg", "recorder.source",
           "purge.failed", "migrate.failed", "thin.failed", "segment.missing",
           "segment_corrupt", "motion.tick_failed", "intent.deferred"}


# --------------------------------------------------------------------------------------------
# the filesystem and what watches it


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of size_mib at path for the test; unmounted afterwards, whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the disk-pressure tests needs root")
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755",
                             "tmpfs", str(path)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {path}: {result.stderr.strip() or result.returncode}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def free_bytes(path: Path) -> int:
    """Free space as an unprivileged writer sees it (what the daemon measures)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def add_ballast(disk: Path, leave_free: int) -> int:
    """A file on the filesystem but outside every volume, sized to leave `leave_free` bytes."""
    size = free_bytes(disk) - leave_free
    assert size > 0, (free_bytes(disk), leave_free)
    fd = os.open(disk / "ballast", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return size


class FreeSpaceMonitor:
    """Samples the filesystem's free space in a thread, every `every` seconds."""

    def __init__(self, path: Path, every: float = 0.25) -> None:
        self.path, self.every = path, every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="statvfs")

    def __enter__(self) -> FreeSpaceMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), free_bytes(self.path)))
            self._stop.wait(self.every)

    @property
    def minimum(self) -> tuple[float, int]:
        return min(self.samples, key=lambda s: s[1])


@dataclass
class Sampler:
    """What `ccvault segments` shows of the last seconds, asked every `every` s in a thread."""

    config: Path
    cameras: tuple[str, ...]
    every: float = 5.0
    look_back_s: int = 12
    answers: list[tuple[float, str, list[dict]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True, name="sampler")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            for camera in self.cameras:
                result = run_cli(self.config, "segments", "--camera", camera, "--from",
                                 f"-{self.look_back_s}s", "--to", "now", "--json", timeout=30)
                if result.returncode != 0:
                    self.errors.append(result.stderr)
                    continue
                self.answers.append((time.monotonic(), camera, json.loads(result.stdout)))
            self._stop.wait(max(0.0, self.every - (time.monotonic() - began)))


# --------------------------------------------------------------------------------------------
# helpers over the daemon's log and the CLI


def ingested(daemon: Daemon, camera: str) -> list[dict]:
    return sorted((e for e in list(daemon.events) if e.get("event") == "segment.ingested"
                   and e.get("camera") == camera), key=lambda e: e["start_ms"])


def events(daemon: Daemon, name: str) -> list[dict]:
    return [e for e in list(daemon.events) if e.get("event") == name]


def assert_no_trouble(daemon: Daemon) -> None:
    """No ENOSPC anywhere in the daemon's output, and none of the events a full disk causes."""
    for line in daemon.raw:
        assert not any(word in line for word in NO_SPACE), f"out of space: {line}"
    trouble = [e for e in list(daemon.events) if e.get("event") in TROUBLE]
    assert trouble == [], "\n".join(json.dumps(e)[:400] for e in trouble)
    bad = [line for line in daemon.raw if line.strip() and not line.startswith("{")]
    assert bad == [], "the daemon wrote something that is not a log event:\n" + "".join(bad[:20])


def assert_recording_never_stopped(daemon: Daemon, camera: str, since_ms: int,
                                   until_ms: int) -> None:
    """A segment of camera starts in every WINDOW_S window of [since_ms, until_ms), and no
    gap between consecutive segments is longer than a fraction of a segment."""
    found = [e for e in ingested(daemon, camera) if e["start_ms"] + e["duration_ms"] > since_ms]
    assert found, f"{camera}: nothing was ingested"
    starts = [e["start_ms"] for e in found]
    for window in range(since_ms, until_ms - WINDOW_S * 1000, WINDOW_S * 1000):
        assert any(window <= s < window + WINDOW_S * 1000 for s in starts), (
            f"{camera}: no segment starts in [{utc_text(window)}, +{WINDOW_S}s)", starts)
    gaps = [(b["start_ms"] - a["start_ms"] - a["duration_ms"]) / 1000
            for a, b in itertools.pairwise(found)]
    assert max(gaps, default=0) < 1.0, f"{camera}: recording has holes {gaps}"


def segments_between(config: Path, camera: str, from_ms: int, to_ms: int) -> list[dict]:
    return cli_json(config, "segments", "--camera", camera, "--from", utc_text(from_ms),
                    "--to", utc_text(to_ms))


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assert_held_intact(config: Path, held: list[Seeded], from_ms: int, to_ms: int) -> None:
    """Every held segment is still catalogued, its file there, its bytes what was catalogued."""
    by_camera: dict[str, set[int]] = {}
    for s in held:
        by_camera.setdefault(s.camera, set()).add(s.id)
    for camera, ids in by_camera.items():
        listed = {s["id"]: s for s in segments_between(config, camera, from_ms, to_ms)}
        assert ids <= set(listed), f"{camera}: held segments gone: {sorted(ids - set(listed))}"
        for seg_id in ids:
            seg = listed[seg_id]
            assert Path(seg["path"]).is_file(), seg
            assert sha256(seg["path"]) == seg["sha256"], seg
            assert seg["state"] == "ok", seg


def assert_store_consistent(config: Path, held_ids: set[int]) -> dict:
    """After the daemon stopped: the dry run plans without error and keeps held footage, the
    audit chain is intact, reconcile finds nothing to fix."""
    dry = run_cli(config, "purge", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    plan = json.loads(dry.stdout)
    for action in plan["actions"]:
        assert action["segment_id"] not in held_ids, action
    for name, total in plan["totals"]["actions"].items():
        chosen = [a for a in plan["actions"] if a["action"] == name]
        assert total == {"segments": len(chosen), "bytes": sum(a["bytes"] for a in chosen)}
    audit = run_cli(config, "audit", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    reconciled = run_cli(config, "reconcile", "--json")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert json.loads(reconciled.stdout) == {
        "ingested": [], "adopted": [], "duplicates": [], "quarantined": [], "missing": []}
    return plan


def hot_volume(name: str, path: Path, reserve: int | str) -> dict:
    return {"name": name, "path": str(path), "role": "hot",
            "reserve_free_bytes": reserve, "reserve_free_percent": 0}


def stop(daemon: Daemon, tmp_path: Path) -> int:
    """SIGTERM, keeping the daemon's log beside the test's files whatever happens."""
    try:
        return daemon.stop()
    finally:
        (tmp_path / "daemon.log").write_text("".join(daemon.raw))


def run_for(seconds: float, daemon: Daemon, check: Callable[[], None] | None = None) -> None:
    """Let the daemon work for `seconds`, failing early if it exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert daemon.proc is not None
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited ({daemon.proc.returncode}):\n"
                                 + "".join(daemon.raw[-30:]))
        if check is not None:
            check()
        time.sleep(0.5)


# --------------------------------------------------------------------------------------------
# the tests


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", 96) as path:
        yield path


# ~90 KiB/s for each 1280x720 demo camera and ~30 KiB/s at 640x360: ~210 KiB/s in all, so
# the 8 MiB reserve plus the headroom left at the start lasts about 45 s without deletions.
PRESSURE_CAMERAS = {"door": "demo://?width=1280&height=720&period=20",
                    "rack": "demo://?width=1280&height=720&period=30",
                    "aisle": "demo://?width=640&height=360&period=40"}
START_HEADROOM = 1 * MIB  # free space above the reserve when the daemon starts
RUN_S = 85


def test_full_disk_recording_goes_on_by_premature_deletion_and_held_footage_stays(
    tmp_path: Path, disk: Path, daemon_factory
) -> None:
    volume = disk / "hot"
    config = write_config(tmp_path, [{"name": n, "url": u} for n, u in PRESSURE_CAMERAS.items()],
                          segment_seconds=SEGMENT_S,
                          volumes=[hot_volume("hot", volume, "8 MiB")])
    cameras = tuple(PRESSURE_CAMERAS)
    now = int(time.time()) * 1000
    # Backdated footage, placed through the store: past min_days (may go without an alert),
    # held (may never go), and younger than min_days (may go only prematurely).
    old_at, held_at, young_at = now - 10 * DAY_MS, now - 3 * DAY_MS, now - 2 * DAY_MS
    footage = [{"camera": c, "start_ms": at + i * 2000}
               for at, count in ((old_at, 5), (held_at, 15), (young_at, 15))
               for c in cameras for i in range(count)]
    seeded = seed(config, footage, tmp_path / "cache")
    held_to = held_at + 15 * 2000
    held = [s for s in seeded if held_at <= s.start_ms < held_to]
    old = [s for s in seeded if s.start_ms < held_at]
    hold = run_cli(config, "hold", "add", "--from", utc_text(held_at), "--to", utc_text(held_to),
                   "--reason", "incident 4711: keep everything")
    assert hold.returncode == 0, hold.stderr
    ballast = add_ballast(disk, RESERVE + START_HEADROOM)

    with FreeSpaceMonitor(disk) as monitor:
        daemon = daemon_factory(config)
        started_ms = int(time.time() * 1000)
        sampler = Sampler(config, cameras).start()
        try:
            run_for(RUN_S, daemon)
        finally:
            sampler.stop()
            (tmp_path / "daemon.log").write_text("".join(daemon.raw))
        stopped_ms = int(time.time() * 1000)
        assert stop(daemon, tmp_path) == 0
    low_at, low = monitor.minimum
    first = monitor.samples[0][0]
    report = {"ballast_mib": round(ballast / MIB, 1),
              "min_free_mib": round(low / MIB, 2), "min_free_at_s": round(low_at - first, 1),
              "premature": [{k: e.get(k) for k in ("cameras", "bytes", "rule")}
                            for e in events(daemon, "premature_deletion")],
              "purges": [{k: e.get(k) for k in ("segments", "bytes", "rules")}
                         for e in events(daemon, "purge.done")]}
    print("disk pressure:", json.dumps(report))

    # The disk never ran full; it never even came near the last half of the reserve.
    assert low > 0, report
    assert low > RESERVE // 4, report
    assert_no_trouble(daemon)

    # Recording never stopped: in the daemon's log, and in what `segments` showed meanwhile.
    warm_ms = started_ms + WARM_UP_S * 1000
    for camera in cameras:
        assert_recording_never_stopped(daemon, camera, warm_ms, stopped_ms)
    assert sampler.errors == []
    seen = [(t, c, found) for t, c, found in sampler.answers if t - first > WARM_UP_S + 4]
    assert len(seen) >= len(cameras) * (RUN_S - WARM_UP_S) // 10, sampler.answers
    empty = [(round(t - first, 1), c) for t, c, found in seen if not found]
    assert empty == [], f"`segments` showed no recent footage at {empty}"

    # Held footage: every segment there, byte for byte.
    assert_held_intact(config, held, held_at, held_to)

    # The pressure was relieved by deleting, in order: footage past min_days without an alert,
    # then younger footage with a premature_deletion alert naming cameras, range and bytes.
    alerts = events(daemon, "premature_deletion")
    assert alerts, report
    for alert in alerts:
        assert alert["level"] == "error"
        assert alert["rule"] == "pressure:hot", alert
        assert set(alert["cameras"]) <= set(cameras), alert
        assert alert["bytes"] == sum(e["bytes"] for e in alert["cameras"].values()) > 0
        for entry in alert["cameras"].values():
            assert entry["from_ms"] >= now - 7 * DAY_MS, ("not premature", alert)
            assert entry["from_ms"] >= held_to, ("held footage in the range", alert)
            assert entry["from_ms"] < entry["to_ms"] <= stopped_ms, alert
            assert entry["segments"] > 0 and entry["volume"] == "hot", alert
    for s in old:
        assert segments_between(config, s.camera, s.start_ms, s.end_ms) == [], (
            "footage past min_days goes before younger footage", s)
    young_left = sum(len(segments_between(config, c, young_at, young_at + 60_000))
                     for c in cameras)
    assert young_left == 0, "idle footage inside min_days goes before newer footage"

    plan = assert_store_consistent(config, {s.id for s in held})
    print("dry run after:", json.dumps(plan["totals"]["actions"]))
    assert (PRESSURE_EVERY_S, RESERVE) == (30, 8 * MIB)  # the cadence these numbers assume


BLOCK_CAMERA = {"name": "door", "url": "demo://?width=640&height=360"}


def test_volume_with_only_held_footage_left_blocks_and_recording_moves_on(
    tmp_path: Path, disk: Path, daemon_factory
) -> None:
    small, big = disk / "small", tmp_path / "big"
    config = write_config(tmp_path, [BLOCK_CAMERA], segment_seconds=SEGMENT_S, volumes=[
        hot_volume("small", small, "8 MiB"), hot_volume("big", big, 0)])
    now = int(time.time()) * 1000
    held_at = now - 2 * DAY_MS
    held = seed(config, [{"camera": "door", "start_ms": held_at + i * 2000, "volume": "small"}
                         for i in range(20)], tmp_path / "cache")
    held_to = held_at + 20 * 2000
    hold = run_cli(config, "hold", "add", "--camera", "door", "--from", utc_text(held_at),
                   "--to", utc_text(held_to), "--reason", "court order")
    assert hold.returncode == 0, hold.stderr
    add_ballast(disk, RESERVE // 2)  # under the reserve; nothing but held footage to free

    with FreeSpaceMonitor(disk) as monitor:
        daemon = daemon_factory(config)
        blocked = daemon.wait_event("held_footage_blocking", timeout=PRESSURE_EVERY_S + 5,
                                    volume="small")
        blocked_ms = int(time.time() * 1000)
        wait_for(lambda: len([e for e in ingested(daemon, "door")
                              if e["start_ms"] > blocked_ms]) >= 5, 30,
                 what="segments recorded after the block")
        assert daemon.stop() == 0
    assert blocked["level"] == "error" and blocked["need_bytes"] > 0, blocked
    after = [e for e in ingested(daemon, "door") if e["start_ms"] > blocked_ms]
    assert {e["volume"] for e in after} == {"big"}, after
    listed = segments_between(config, "door", blocked_ms, int(time.time() * 1000))
    assert listed and {s["volume"] for s in listed} == {"big"}, listed
    for seg in listed:
        assert sha256(seg["path"]) == seg["sha256"], seg
    assert monitor.minimum[1] > 0
    assert_no_trouble(daemon)
    assert events(daemon, "premature_deletion") == [], "nothing but held footage to delete"
    assert_held_intact(config, held, held_at, held_to)
    assert_store_consistent(config, {s.id for s in held})
