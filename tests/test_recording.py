"""End to end: real cameras (RTSP, MPEG-TS over HTTP) recorded by the real daemon."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from pathlib import Path

import av
import pytest

from tests.conftest import (
    cli_json,
    open_segment_has_a_fragment,
    run_cli,
    wait_for,
    write_config,
)
from tests.peers import HttpTsServer, RtspServer

SEGMENT_S = 2
PASSWORD = "Very$ecret-77"


def segments(config: Path, camera: str, since: str = "-10m") -> list[dict]:
    return cli_json(config, "segments", "--camera", camera, "--from", since, "--to", "now")


def play_seconds(path: str) -> float:
    """How long the file plays, by decoding it (not by trusting its header)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * stream.time_base) for f in container.decode(stream)]
    frame = 1 / float(stream.average_rate or 10)
    return max(times) - min(times) + frame


@pytest.mark.slow
def test_rtsp_and_http_cameras_are_recorded_hashed_indexed_and_playable(
    tmp_path: Path, daemon_factory
) -> None:
    rtsp = RtspServer(user="viewer", password=PASSWORD).start()
    http = HttpTsServer().start()
    (tmp_path / "door.pw").write_text(PASSWORD + "\n")
    (tmp_path / "door.pw").chmod(0o600)
    config = write_config(
        tmp_path,
        [
            {
                "name": "door",
                "url": f"rtsp://viewer@127.0.0.1:{rtsp.port}/cam",
                "password_file": "door.pw",
            },
            {"name": "rack", "url": http.url},
        ],
        segment_seconds=SEGMENT_S,
    )
    daemon = daemon_factory(config)
    for camera in ("door", "rack"):
        wait_for(lambda c=camera: len(segments(config, c)) >= 4, 40, what=f"{camera} segments")

    second = run_cli(config, "run", timeout=30)
    assert second.returncode == 5, "one daemon per catalog"
    assert "another ccvault daemon is running" in second.stderr

    status = cli_json(config, "status")
    assert {c["name"]: c["state"] for c in status["cameras"]} == {
        "door": "recording",
        "rack": "recording",
    }
    assert status["volumes"][0]["state"] == "available"
    assert status["volumes"][0]["footage_bytes"] > 0

    for camera in ("door", "rack"):
        found = segments(config, camera)
        for seg in found:
            data = Path(seg["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == seg["sha256"]
            assert len(data) == seg["bytes"]
            stated = (seg["end_ms"] - seg["start_ms"]) / 1000
            assert abs(play_seconds(seg["path"]) - stated) <= 1.0, seg
            assert seg["path"].startswith(str(tmp_path / "hot" / camera))
            length = seg["end_ms"] - seg["start_ms"]
            assert Path(seg["path"]).name == f"{seg['start_ms']}_{length}.mp4"
        starts = [s["start_ms"] for s in found]
        assert starts == sorted(starts)
        gaps = [b["start_ms"] - a["end_ms"] for a, b in itertools.pairwise(found)]
        assert max(gaps) < 500, f"recording of {camera} has holes: {gaps}"
        now_ms = time.time() * 1000
        assert now_ms - found[-1]["end_ms"] < (SEGMENT_S + 5) * 1000, "timestamps are wall clock"

    before = len(segments(config, "door"))
    # Either the open segment holds footage when the daemon stops, or one closed meanwhile.
    wait_for(lambda: open_segment_has_a_fragment(tmp_path, "door"), 10, what="footage on disk")
    assert daemon.stop() == 0
    after = segments(config, "door")
    assert len(after) >= before + 1, "the open segment is closed and ingested on SIGTERM"
    assert not list((tmp_path / "hot" / ".spool").rglob("*.mp4")), "spool left behind"

    logs = "".join(daemon.raw)
    assert PASSWORD not in logs
    assert PASSWORD not in json.dumps(status)
    assert daemon.count("segment.ingested", camera="door") == len(after)


def test_wrong_password_is_reported_without_the_password(tmp_path: Path, daemon_factory) -> None:
    rtsp = RtspServer(user="viewer", password=PASSWORD).start()
    config = write_config(
        tmp_path,
        [{"name": "door", "url": f"rtsp://viewer:Wrong-{PASSWORD}@127.0.0.1:{rtsp.port}/cam"}],
    )
    daemon = daemon_factory(config)
    event = daemon.wait_event("recorder.exited", timeout=20, camera="door")
    assert any("401" in line or "Unauthorized" in line for line in event["stderr"]), event
    logs = "".join(daemon.raw)
    assert f"Wrong-{PASSWORD}" not in logs
    assert "viewer:***@" in logs
    assert segments(config, "door") == []
