"""The live relay reads a camera's segment files as ffmpeg writes them (`recorder/live.py`):
real fragmented MP4 files, made by the bundled ffmpeg with the recorder's own muxer options,
handed to a real relay as its recorder would, and what a viewer receives decoded with PyAV.
(`test_live.py` runs it end to end with the daemon and a live RTSP camera.)"""

from __future__ import annotations

import io
import itertools
import subprocess
from pathlib import Path
from typing import Any

import av
import pytest

from ccvault.recorder.ffmpeg import RECORDED_MP4
from ccvault.recorder.live import LiveRelay, Viewer, ViewerEnd, codec_string
from tests.conftest import wait_for
from tests.peers import ffmpeg_exe

FPS = 10


def record(out: Path, seconds: int, size: str = "160x90", audio: bool = False) -> list[Path]:
    """2 s segment files cut as the recorder cuts them: each starts at 0 (reset timestamps)."""
    out.mkdir()
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    cmd += ["-i", f"testsrc2=s={size}:r={FPS}:d={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=d={seconds}", "-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-g", str(FPS), "-bf", "0", "-pix_fmt", "yuv420p"]
    cmd += ["-f", "segment", "-segment_time", "2", "-reset_timestamps", "1"]
    cmd += ["-segment_format", "mp4", "-segment_format_options", RECORDED_MP4]
    subprocess.run([*cmd, str(out / "%06d.mp4")], check=True, timeout=60)
    return sorted(out.glob("*.mp4"))


def watched(relay: LiveRelay, files: list[Path]) -> Viewer:
    """A viewer that joins while the first file is the newest, then the run goes on and ends."""
    relay.opened("cam", files[0])
    viewer = Viewer("cam")
    assert relay.join(viewer)
    for path in files[1:]:
        relay.opened("cam", path)
    relay.ended("cam")
    wait_for(lambda: viewer.end is not None, 10, interval=0.05, what="the stream's end")
    return viewer


def frames(data: bytes) -> list[Any]:
    with av.open(io.BytesIO(data), format="mp4") as container:
        return list(container.decode(container.streams.video[0]))


@pytest.fixture
def relay() -> Any:
    relay = LiveRelay()
    yield relay
    relay.stop()


def test_a_viewer_sees_one_unbroken_stream_across_segment_files(
    relay: LiveRelay, tmp_path: Path
) -> None:
    files = record(tmp_path / "run", 6)
    assert len(files) == 3
    viewer = watched(relay, files)
    assert viewer.end is ViewerEnd.STREAM_ENDED  # the run ended: the client asks again
    got = frames(viewer.take())
    # It joined at the first file's last keyframe (1 s of it), then had every later frame.
    assert len(got) == 5 * FPS
    assert got[0].key_frame
    times = [float(f.time) for f in got]
    steps = {round(b - a, 3) for a, b in itertools.pairwise(times)}
    assert steps == {1 / FPS}, f"decode times run on from file to file, no gap: {steps}"


def test_a_camera_that_changes_its_picture_size_ends_the_stream_there(
    relay: LiveRelay, tmp_path: Path
) -> None:
    first = record(tmp_path / "small", 2)
    second = record(tmp_path / "large", 2, size="320x180")
    viewer = watched(relay, [*first, second[0]])
    assert viewer.end is ViewerEnd.STREAM_ENDED
    got = frames(viewer.take())
    assert {(f.width, f.height) for f in got} == {(160, 90)}, "no picture of a new setup"


def test_a_viewer_who_comes_before_the_first_fragment_starts_at_it(
    relay: LiveRelay, tmp_path: Path
) -> None:
    whole = record(tmp_path / "run", 2)[0].read_bytes()
    init = whole[: whole.index(b"moof") - 4]
    growing = tmp_path / "growing.mp4"
    growing.write_bytes(init)  # ffmpeg has just opened it: its init segment only so far
    relay.opened("cam", growing)
    assert relay.codec("cam") == codec_string(init)
    viewer = Viewer("cam")
    assert relay.join(viewer), "the init segment is there: it waits for a keyframe"
    assert viewer.take() == b""
    with growing.open("ab") as f:
        f.write(whole[len(init) :])
    wait_for(lambda: viewer._size, 10, interval=0.05, what="the first fragment")
    relay.leave(viewer)
    assert relay.viewers() == 0
    data = viewer.take()
    assert data.startswith(init)
    assert len(frames(data)) == 2 * FPS and frames(data)[0].key_frame


def test_the_codecs_name_sound_where_the_camera_records_it(tmp_path: Path) -> None:
    init = record(tmp_path / "run", 2, audio=True)[0].read_bytes()
    assert codec_string(init).startswith("avc1.")
    assert codec_string(init).endswith(",mp4a.40.2")
