"""file:// sources (looped in real time), H.265 kept with a warning, MJPEG refused clearly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from tests.conftest import cli_json, wait_for, write_config
from tests.peers import ffmpeg_exe, make_clip


@pytest.mark.slow
def test_file_sources_by_codec(tmp_path: Path, daemon_factory) -> None:
    h264 = make_clip(tmp_path / "h264.mp4", 3, keyint_s=1.0)
    h265 = make_clip(tmp_path / "h265.mp4", 3, keyint_s=1.0, codec="h265")
    mjpeg = tmp_path / "mjpeg.avi"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=10",
            "-t",
            "3",
            "-c:v",
            "mjpeg",
            str(mjpeg),
        ],
        check=True,
    )
    g711 = tmp_path / "g711.mov"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-g",
            "10",
            "-bf",
            "0",
            "-c:a",
            "pcm_mulaw",
            "-ar",
            "8000",
            str(g711),
        ],
        check=True,
    )
    config = write_config(
        tmp_path,
        [
            {"name": "lab264", "url": f"file://{h264}"},
            {"name": "lab265", "url": f"file://{h265}"},
            {"name": "labjpeg", "url": f"file://{mjpeg}"},
            {"name": "mic", "url": f"file://{g711}", "audio": True},
            {"name": "nomic", "url": f"file://{g711}"},
        ],
        segment_seconds=2,
    )
    daemon = daemon_factory(config)

    def listed(camera: str) -> list[dict]:
        return cli_json(config, "segments", "--camera", camera, "--from", "-5m", "--to", "now")

    # A 3 s file replayed in real time and looped keeps producing footage past its length.
    wait_for(
        lambda: sum(s["end_ms"] - s["start_ms"] for s in listed("lab264")) >= 7000,
        40,
        what="looped replay",
    )
    wait_for(lambda: listed("lab265"), 30, what="H.265 footage")
    with av.open(listed("lab265")[0]["path"]) as container:
        assert container.streams.video[0].codec_context.name == "hevc", "stream copy, no transcode"
    with av.open(listed("lab264")[0]["path"]) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    daemon.wait_event("camera.h265", timeout=5, camera="lab265")

    # G.711 cannot go into MP4: with audio on it becomes AAC (the only conversion); off, none.
    for camera, audio in (("mic", ["aac"]), ("nomic", [])):
        wait_for(lambda c=camera: listed(c), 30, what=f"{camera} footage")
        with av.open(listed(camera)[0]["path"]) as container:
            assert [s.codec_context.name for s in container.streams.audio] == audio
            assert container.streams.video[0].codec_context.name == "h264"

    refused = daemon.wait_event("camera.unsupported_codec", timeout=20, camera="labjpeg")
    assert "MJPEG" in refused["detail"]
    assert listed("labjpeg") == []
    state = {c["name"]: c["state"] for c in cli_json(config, "status")["cameras"]}
    assert state["labjpeg"] != "recording"
    assert daemon.stop() == 0
