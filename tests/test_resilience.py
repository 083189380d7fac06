"""Crashes and disappearing cameras: what a user would see after the fact."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import (
    cli_json,
    event_ms,
    open_segment_has_a_fragment,
    run_cli,
    wait_for,
    write_config,
)
from tests.peers import RtspServer, make_clip

# Every test here runs the daemon against cameras for half a minute or more.
pytestmark = pytest.mark.slow

SEGMENT_S = 2
CONNECT_SLACK_S = 3.0  # an RTSP (re)connect, stream probe and first keyframe


def segments(config: Path) -> list[dict]:
    return cli_json(config, "segments", "--camera", "door", "--from", "-15m", "--to", "now")


def gaps_s(found: list[dict]) -> list[float]:
    return [(b["start_ms"] - a["end_ms"]) / 1000 for a, b in itertools.pairwise(found)]


def test_kill9_of_recorder_and_daemon_loses_at_most_the_open_segment(
    tmp_path: Path, daemon_factory
) -> None:
    server = RtspServer().start()
    config = write_config(
        tmp_path, [{"name": "door", "url": server.url()}], segment_seconds=SEGMENT_S
    )
    daemon = daemon_factory(config)
    wait_for(lambda: len(segments(config)) >= 2, 30, what="first segments")

    # A recorder killed mid-segment: its open fragmented MP4 is salvaged, recording resumes.
    wait_for(lambda: open_segment_has_a_fragment(tmp_path, "door"), 10, what="a fragment on disk")
    os.kill(daemon.recorder_pids()[0], signal.SIGKILL)
    daemon.wait_event("recorder.exited", timeout=10, camera="door")
    daemon.wait_event("segment.salvaged", timeout=15, camera="door")
    count = len(segments(config))
    wait_for(lambda: len(segments(config)) >= count + 2, 30, what="recording resumed")

    # The daemon killed: its recorder closes the open segment (parent-death signal).
    children = daemon.descendants()
    assert any("spawn_main" in " ".join(c.cmdline()) for c in children), "a motion worker"
    killed_at = time.monotonic()
    daemon.kill9()
    wait_for(
        lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children),
        5,
        what="recorders and analysis workers dying with the daemon",
    )
    restarted = daemon_factory(config)
    downtime = time.monotonic() - killed_at
    count = len(segments(config))
    wait_for(lambda: len(segments(config)) >= count + 3, 30, what="recording after restart")
    assert restarted.stop() == 0

    found = segments(config)
    worst = max(gaps_s(found))
    assert worst <= downtime + SEGMENT_S + CONNECT_SLACK_S, (worst, downtime, gaps_s(found))
    # Without the crashes every gap is tiny: only two may be large (the two crashes).
    assert sum(1 for g in gaps_s(found) if g > 0.5) <= 2, gaps_s(found)
    names = [Path(s["path"]).name for s in found]
    assert len(names) == len(set(names)), "no segment overwritten or catalogued twice"

    result = run_cli(config, "reconcile", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert cli_json(config, "reconcile") == {
        "ingested": [],
        "adopted": [],
        "found": [],
        "duplicates": [],
        "quarantined": [],
        "missing": [],
        "foreign": [],
        "unavailable": [],
    }


def test_camera_that_disappears_goes_offline_and_recording_resumes_by_itself(
    tmp_path: Path, daemon_factory
) -> None:
    server = RtspServer().start()
    config = write_config(
        tmp_path,
        [{"name": "door", "url": server.url()}],
        segment_seconds=SEGMENT_S,
        offline_after=6,
    )
    daemon = daemon_factory(config)
    daemon.wait_event("camera.state", timeout=20, camera="door", new="recording")
    wait_for(lambda: len(segments(config)) >= 1, 20, what="a segment")

    server.stop()
    gone_ms = time.time() * 1000
    # Timed by the daemon's own log (when it changed state), not by when this test got round
    # to reading the line.
    connecting = daemon.wait_event("camera.state", timeout=30, camera="door", new="connecting")
    assert event_ms(connecting) - gone_ms < 8000, "a dropped camera is noticed within seconds"
    offline = daemon.wait_event("camera.state", timeout=40, camera="door", new="offline")
    assert 5000 <= event_ms(offline) - gone_ms <= (6 + 5) * 1000
    state = cli_json(config, "status")["cameras"][0]
    assert state["state"] == "offline"
    assert state["since"] is not None

    count = len(segments(config))
    server.start()
    daemon.wait_event("camera.state", timeout=40, camera="door", new="recording")
    wait_for(lambda: len(segments(config)) >= count + 2, 30, what="segments after return")
    assert cli_json(config, "status")["cameras"][0]["state"] == "recording"


def test_camera_that_sends_frames_but_no_segment_is_stalled_and_restarted(
    tmp_path: Path, daemon_factory
) -> None:
    # A keyframe once a minute: frames arrive, but no 2 s segment can be cut for 60 s.
    clip = make_clip(tmp_path / "long-gop.mp4", 70, keyint_s=60)
    config = write_config(
        tmp_path, [{"name": "door", "url": f"file://{clip}"}], segment_seconds=SEGMENT_S
    )
    daemon = daemon_factory(config)
    daemon.wait_event("camera.state", timeout=20, camera="door", new="recording")
    stalled = daemon.wait_event(
        "camera.state", timeout=2 * SEGMENT_S + 30 + 60, camera="door", new="stalled"
    )
    # By the daemon's clock, from the start of the run that stalled (the stall timer's origin).
    started = [
        e
        for e in daemon.events[: daemon.events.index(stalled)]
        if e.get("event") == "recorder.started"
    ][-1]
    assert event_ms(stalled) - event_ms(started) >= (2 * SEGMENT_S + 30 - 5) * 1000
    assert stalled["reason"] == f"no segment for {2 * SEGMENT_S + 30} s"
    wait_for(
        lambda: daemon.count("recorder.started", camera="door") >= 2,
        15,
        what="the stalled recorder restarted",
    )
    assert daemon.count("camera.state", camera="door", new="connecting") >= 1
