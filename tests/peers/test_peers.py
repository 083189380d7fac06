"""The test peers themselves work, for real: a client (the bundled ffmpeg)
records from them, and PyAV checks what it wrote. If these fail, every
end-to-end test built on the peers would fail for the wrong reason."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from . import (  # relative: works with or without tests/__init__.py
    HttpTsServer,
    RtspServer,
    ffmpeg_exe,
    free_port,
    make_clip,
    make_mpegts_clip,
)

FPS = 10
# Smaller probe than ffmpeg's default 5 s: the recording starts ~1.5 s sooner on HTTP.
FAST_PROBE = ["-analyzeduration", "1000000", "-probesize", "65536"]


@dataclass
class Media:
    codec: str
    width: int
    height: int
    frames: int
    duration_s: float
    keyframes: list[int]


def probe(path: Path) -> Media:
    """Decode every frame of the file's video stream with PyAV."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        assert frames, f"{path} has no decodable frames"
        t0, t1 = frames[0].time, frames[-1].time
        assert t0 is not None and t1 is not None
        return Media(
            codec=v.codec_context.name,
            width=v.width,
            height=v.height,
            frames=len(frames),
            duration_s=t1 - t0 + 1 / FPS,
            keyframes=[i for i, f in enumerate(frames) if f.key_frame],
        )


def record(url: str, seconds: float, out: Path, *opts: str) -> subprocess.CompletedProcess[str]:
    """Copy ``seconds`` of a live stream to ``out`` with the bundled ffmpeg."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    cmd += [*opts, "-i", url, "-t", str(seconds), "-c", "copy", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 20, check=False)


def assert_recorded(res: subprocess.CompletedProcess[str], out: Path, seconds: float) -> Media:
    assert res.returncode == 0, res.stderr
    m = probe(out)
    assert m.codec == "h264"
    assert (m.width, m.height) == (320, 180)
    assert seconds - 0.5 <= m.duration_s <= seconds + 0.6, m
    assert m.frames >= (seconds - 0.5) * FPS, m
    assert m.keyframes and m.keyframes[0] == 0, m  # starts decodable
    return m


@pytest.fixture(scope="module")
def rtsp() -> Iterator[RtspServer]:
    with RtspServer(paths=("/cam", "/cam2"), fps=FPS) as server:
        yield server


@pytest.fixture(scope="module")
def http() -> Iterator[HttpTsServer]:
    with HttpTsServer(fps=FPS) as server:
        yield server


def test_rtsp_records_three_seconds_of_h264(rtsp: RtspServer, tmp_path: Path) -> None:
    out = tmp_path / "rtsp.mp4"
    m = assert_recorded(record(rtsp.url(), 3, out, "-rtsp_transport", "tcp"), out, 3)
    assert len(m.keyframes) >= 2  # one keyframe a second


def test_rtsp_serves_two_clients_and_two_paths_at_once(tmp_path: Path) -> None:
    # A client that joins a shared stream mid-GOP copies from the next keyframe, while its
    # `-t` counts from the first packet: how much it loses depends on when its ffmpeg got
    # going (late on a busy machine). A keyframe every 0.2 s keeps that under 0.2 s.
    with RtspServer(paths=("/cam", "/cam2"), fps=FPS, keyint=2) as rtsp:
        jobs = {
            tmp_path / "a.mp4": rtsp.url("/cam"),
            tmp_path / "b.mp4": rtsp.url("/cam"),
            tmp_path / "c.mp4": rtsp.url("/cam2"),
        }
        results: dict[Path, subprocess.CompletedProcess[str]] = {}

        def run(out: Path, url: str) -> None:
            results[out] = record(url, 2, out, "-rtsp_transport", "tcp")

        threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for out in jobs:
        assert_recorded(results[out], out, 2)


def test_rtsp_stop_and_start_again_on_the_same_port(tmp_path: Path) -> None:
    port = free_port()
    cam = RtspServer(port=port, fps=FPS)
    try:
        cam.start()
        cam.stop()
        assert not cam.running
        gone = record(cam.url(), 1, tmp_path / "gone.mp4", "-rtsp_transport", "tcp")
        assert gone.returncode != 0  # the camera really disappeared
        cam.start()
        assert cam.port == port
        out = tmp_path / "back.mp4"
        assert_recorded(record(cam.url(), 1.5, out, "-rtsp_transport", "tcp"), out, 1.5)
    finally:
        cam.stop()


def test_rtsp_auth_rejects_a_wrong_password(tmp_path: Path) -> None:
    with RtspServer(fps=FPS, user="admin", password="s3cret") as cam:
        url = cam.url()
        bad = url.replace("rtsp://", "rtsp://admin:wrong@")
        res = record(bad, 1, tmp_path / "bad.mp4", "-rtsp_transport", "tcp")
        assert res.returncode != 0 and "401" in res.stderr, res.stderr
        res = record(url, 1, tmp_path / "none.mp4", "-rtsp_transport", "tcp")
        assert res.returncode != 0 and "401" in res.stderr, res.stderr
        out = tmp_path / "good.mp4"
        res = record(cam.url(auth=True), 1.5, out, "-rtsp_transport", "tcp")
        assert_recorded(res, out, 1.5)


def test_http_ts_records_three_seconds_of_h264(http: HttpTsServer, tmp_path: Path) -> None:
    out = tmp_path / "http.mp4"
    assert_recorded(record(http.url, 3, out, *FAST_PROBE), out, 3)


def test_http_ts_drop_is_seen_by_the_client_and_restart_reuses_the_port(
    tmp_path: Path,
) -> None:
    cam = HttpTsServer(fps=FPS)
    try:
        cam.start()
        port = cam.port
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        cmd += [*FAST_PROBE, "-i", cam.url, "-t", "30", "-c", "copy", str(tmp_path / "cut.ts")]
        client = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        try:
            threading.Event().wait(1.5)
            cam.stop()
            # ffmpeg ends by itself when the camera goes (with exit code 0: a
            # truncated HTTP body looks like the end of the stream).
            client.wait(timeout=10)
        finally:
            client.kill()
            client.wait()
        assert probe(tmp_path / "cut.ts").frames >= 5
        cam.start()
        assert cam.port == port
        out = tmp_path / "back.mp4"
        assert_recorded(record(cam.url, 1.5, out, *FAST_PROBE), out, 1.5)
    finally:
        cam.stop()


@pytest.mark.parametrize("maker", [make_clip, make_mpegts_clip])
def test_clip_has_keyframes_every_second_and_motion_only_in_windows(
    maker: object, tmp_path: Path
) -> None:
    assert callable(maker)
    suffix = ".mp4" if maker is make_clip else ".ts"
    path = maker(tmp_path / f"clip{suffix}", 4, fps=FPS, motion_windows=((1.0, 2.0),))
    m = probe(path)
    assert (m.codec, m.frames, m.keyframes) == ("h264", 40, [0, 10, 20, 30])
    with av.open(str(path)) as c:
        grey = [f.to_ndarray(format="gray").astype(np.int16) for f in c.decode(video=0)]
    moving = [i for i in range(1, len(grey)) if np.abs(grey[i] - grey[i - 1]).max() > 40]
    # frames 10..20 (1 s..2 s) show the moving box; every other frame is identical
    assert moving and min(moving) >= 10 and max(moving) <= 21, moving


def test_h265_clip(tmp_path: Path) -> None:
    m = probe(make_clip(tmp_path / "clip.mp4", 2, fps=FPS, codec="h265", keyint_s=0.5))
    assert (m.codec, m.frames, m.keyframes) == ("hevc", 20, [0, 5, 10, 15])


def test_stopped_peers_leave_no_process(tmp_path: Path) -> None:
    cam = RtspServer(fps=FPS).start()
    pid = cam.pid
    assert pid is not None and cam.running
    cam.stop()
    assert not cam.running
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
