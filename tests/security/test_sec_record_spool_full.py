"""Footage that cannot be stored is never lost quietly (issue 14, item 5).

A spool on its own small filesystem (a tmpfs the test mounts) fills up while a real demo camera
records: frames keep arriving, but no segment can be written, so none lands in the catalog. The
camera must not look like it is recording, and `recording_failed` must fire within two segment
lengths of the last segment stored; when space returns, segments land again and it resolves.
Needs root (to mount the tmpfs); skipped otherwise.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli, wait_for, write_config
from tests.test_disk_pressure import add_ballast, event_ms, ingested, mounted_tmpfs, stop

SEGMENT_S = 4
CAMERA = {"name": "door", "url": "demo://?width=640&height=360"}


def alerts(config: Path) -> dict:
    result = run_cli(config, "alerts", "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def firing(config: Path, name: str) -> list[dict]:
    return [a for a in alerts(config)["active"] if a["name"] == name]


def camera_state(config: Path, camera: str) -> str:
    result = run_cli(config, "status", "--json")
    assert result.returncode in (0, 1), result.stderr
    return next(c["state"] for c in json.loads(result.stdout)["cameras"] if c["name"] == camera)


@pytest.mark.slow
def test_frames_without_stored_segments_raise_recording_failed_within_two_segment_lengths(
    tmp_path: Path, daemon_factory
) -> None:
    with mounted_tmpfs(tmp_path / "spool", 24) as spool:
        config = write_config(
            tmp_path, [CAMERA], segment_seconds=SEGMENT_S, offline_after=60, spool=spool
        )
        with config.open("a") as f:
            f.write("\n[alerts]\ncheck_seconds = 1\n")
        daemon = daemon_factory(config)
        try:
            _fill_and_free(config, spool, daemon)
        finally:
            (tmp_path / "daemon.log").write_text("".join(daemon.raw))
        assert stop(daemon, tmp_path) == 0


def _fill_and_free(config: Path, spool: Path, daemon) -> None:
    wait_for(lambda: len(ingested(daemon, "door")) >= 2, 30, what="two segments stored")

    ballast = add_ballast(spool, 0)  # another program takes the spool's last byte
    filled_ms = int(time.time() * 1000)
    fired = daemon.wait_event(
        "alert.fired", timeout=6 * SEGMENT_S, alert="recording_failed", camera="door"
    )
    stored = [e for e in ingested(daemon, "door") if event_ms(e) <= event_ms(fired)]
    last_stored_ms = max(event_ms(e) for e in stored)
    assert last_stored_ms <= filled_ms + SEGMENT_S * 1000, (last_stored_ms, filled_ms)
    assert event_ms(fired) - last_stored_ms <= 2 * SEGMENT_S * 1000, (
        "recording_failed fired later than two segment lengths after the last segment",
        event_ms(fired) - last_stored_ms,
    )
    assert fired["severity"] == "critical", fired
    # What a user asks meanwhile: the alert is listed, the camera is not "recording", and
    # its last footage stays where it was.
    assert firing(config, "recording_failed"), alerts(config)
    assert camera_state(config, "door") == "failing"
    count = len(ingested(daemon, "door"))
    time.sleep(2 * SEGMENT_S)
    assert len(ingested(daemon, "door")) == count, "nothing can be stored in a full spool"
    assert camera_state(config, "door") == "failing"

    (spool / "ballast").unlink()  # space is back: recording lands again and it resolves
    daemon.wait_event(
        "alert.resolved", timeout=8 * SEGMENT_S, alert="recording_failed", camera="door"
    )
    assert len(ingested(daemon, "door")) > count
    assert not firing(config, "recording_failed")
    # ffmpeg may have exited on the full spool: it is started again after the reconnect
    # backoff (at most 60 s, +20 % jitter), then its frames make the camera `recording`.
    wait_for(lambda: camera_state(config, "door") == "recording", 90, what="recording again")
    assert ballast > 0
