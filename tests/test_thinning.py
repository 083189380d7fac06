"""Grooming (ccvault.storage.thinning) on real files written by the bundled ffmpeg, checked by
decoding."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest

from ccvault.storage.thinning import ThinError, keyframes_only
from tests.peers import ffmpeg_exe

FPS = 15
SECONDS = 10
FRAME_S = 1 / FPS
# The recorder's container: fragmented MP4, one fragment per keyframe.
RECORDER_MOVFLAGS = ["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]


def _ffmpeg(*args: str) -> None:
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, timeout=120)


def _encode(path: Path, codec: str, *, bframes: int = 0, audio: bool = False) -> Path:
    """A moving test picture, keyframe every 2 s, as a camera segment as the recorder writes it."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={FPS}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000"]
    g = str(2 * FPS)
    if codec == "h264":
        video = [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-bf",
            str(bframes),
            "-g",
            g,
            "-keyint_min",
            g,
            "-sc_threshold",
            "0",
        ]
    else:
        x265 = f"bframes={bframes}:keyint={g}:min-keyint={g}:scenecut=0:log-level=error"
        video = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", x265, "-tag:v", "hvc1"]
    sound = ["-c:a", "aac", "-b:a", "32k"] if audio else []
    _ffmpeg(
        *inputs,
        "-t",
        str(SECONDS),
        "-pix_fmt",
        "yuv420p",
        *video,
        *sound,
        "-f",
        "mp4",
        *RECORDER_MOVFLAGS,
        str(path),
    )
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    h264 = _encode(d / "h264.mp4", "h264")
    late = d / "late.mp4"
    # Its first five frames cut off, timestamps kept: it starts 1/3 s in, on a P-frame.
    _ffmpeg(
        "-i",
        str(h264),
        "-c",
        "copy",
        "-bsf:v",
        "noise=drop=lt(n\\,5)",
        "-copyts",
        "-f",
        "mp4",
        str(late),
    )
    return {
        "h264": h264,
        "hevc": _encode(d / "hevc.mp4", "hevc"),
        "h264-bframes-audio": _encode(d / "bf.mp4", "h264", bframes=3, audio=True),
        "late-start": late,
    }


def _keyframe_times(path: Path) -> tuple[str, list[float]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        assert base is not None
        times = [
            float(p.pts * base)
            for p in container.demux(stream)
            if p.size and p.is_keyframe and p.pts is not None
        ]
        return stream.codec_context.name, sorted(times)


@pytest.mark.parametrize("name", ["h264", "hevc", "h264-bframes-audio", "late-start"])
def test_keeps_every_keyframe_at_its_time_and_nothing_else(
    clips: dict[str, Path], tmp_path: Path, name: str
) -> None:
    src = clips[name]
    codec, key_times = _keyframe_times(src)
    assert len(key_times) >= 4
    dst = tmp_path / "thin.mp4"

    media = keyframes_only(ffmpeg_exe(), src, dst)

    assert (media.codec, media.frames, media.keyframes) == (codec, len(key_times), len(key_times))
    with av.open(str(dst)) as container:
        assert not container.streams.audio
        frames = list(container.decode(video=0))
        assert container.streams.video[0].codec_context.name == codec
    assert all(f.key_frame for f in frames)
    times = [float(Fraction(f.pts) * f.time_base) for f in frames]
    assert len(times) == len(key_times)
    for got, want in zip(times, key_times, strict=True):
        assert abs(got - want) < FRAME_S, (times, key_times)
    assert dst.stat().st_size < src.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thin.mp4"]


def test_never_replaces_an_existing_file(clips: dict[str, Path], tmp_path: Path) -> None:
    dst = tmp_path / "thin.mp4"
    dst.write_bytes(b"someone else's bytes")
    with pytest.raises(ThinError, match="exists"):
        keyframes_only(ffmpeg_exe(), clips["h264"], dst)
    assert dst.read_bytes() == b"someone else's bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["thin.mp4"]


def test_corrupt_input_leaves_nothing_behind(clips: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "corrupt.mp4"
    data = bytearray(clips["h264"].read_bytes())
    data[:4096] = bytes(4096)  # the header (ftyp, moov) is gone
    src.write_bytes(data)
    dst = tmp_path / "thin.mp4"
    with pytest.raises(ThinError, match="ffmpeg failed") as caught:
        keyframes_only(ffmpeg_exe(), src, dst)
    assert "Invalid data found" in str(caught.value)  # ffmpeg's own words
    assert [p.name for p in tmp_path.iterdir()] == ["corrupt.mp4"]


def test_footage_without_keyframes_leaves_nothing_behind(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    src = tmp_path / "nokey.mp4"
    _ffmpeg(
        "-i",
        str(clips["h264"]),
        "-c",
        "copy",
        "-bsf:v",
        "noise=drop=key",
        "-f",
        "mp4",
        *RECORDER_MOVFLAGS,
        str(src),
    )
    with pytest.raises(ThinError, match="not usable"):
        keyframes_only(ffmpeg_exe(), src, tmp_path / "thin.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["nokey.mp4"]


def test_timeout_kills_ffmpeg_and_leaves_nothing_behind(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    dst = tmp_path / "thin.mp4"
    with pytest.raises(ThinError, match="took over"):
        keyframes_only(ffmpeg_exe(), clips["h264"], dst, timeout_s=0.001)
    assert list(tmp_path.iterdir()) == []
