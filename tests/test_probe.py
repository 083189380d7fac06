"""Ingest's probe reads a recorded segment from its boxes (`media.recorded_facts`) and says
exactly what PyAV's demuxer says of it (`media.demuxed_facts`, the reference); a file laid out
otherwise is left to PyAV. Real files, made by the bundled ffmpeg with the recorder's muxer
options (`ffmpeg.RECORDED_MP4`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ccvault.recorder.ffmpeg import RECORDED_MP4
from ccvault.storage.media import ProbeError, demuxed_facts, probe, recorded_facts
from tests.peers import ffmpeg_exe

# Frame times that wander as a camera's wall-clock stamps do: each sample its own duration.
JITTER = "settb=1/1000,setpts='(N+0.4*random(0))/(10*TB)'"


def make(out: Path, *codec: str, audio: bool = False, fragmented: bool = True) -> Path:
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", "testsrc2=s=320x180:r=10:d=4"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=d=4", "-c:a", "aac"]
    cmd += ["-vf", JITTER, "-fps_mode", "passthrough", "-enc_time_base", "1/1000"]
    cmd += [*codec, "-g", "10", "-bf", "0"]
    cmd += ["-pix_fmt", "yuv420p"]
    if fragmented:
        cmd += ["-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof"]
        cmd += ["-frag_duration", "200000"]
    subprocess.run([*cmd, str(out)], check=True, timeout=60)
    return out


@pytest.mark.parametrize(
    ("codec", "audio"),
    [(["-c:v", "libx264"], False), (["-c:v", "libx264"], True), (["-c:v", "libx265"], False)],
    ids=["h264", "h264-with-sound", "h265"],
)
def test_a_recorded_segment_reads_as_pyav_demuxes_it(
    tmp_path: Path, codec: list[str], audio: bool
) -> None:
    path = make(tmp_path / "seg.mp4", *codec, audio=audio)
    assert "frag_duration" in RECORDED_MP4  # the layout made here is the recorders'
    fast = recorded_facts(path)
    assert fast is not None, "a recorder's layout is read from its boxes"
    assert fast == demuxed_facts(path)
    assert fast.frames == 40 and fast.keyframes == 4


def test_a_file_laid_out_otherwise_is_left_to_pyav(tmp_path: Path) -> None:
    whole = make(tmp_path / "whole.mp4", "-c:v", "libx264")
    cut = tmp_path / "cut.mp4"  # a killed recorder's file: its last fragment cut short
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    plain = make(tmp_path / "plain.mp4", "-c:v", "libx264", fragmented=False)
    for path in (cut, plain):
        assert recorded_facts(path) is None
        assert probe(path) == demuxed_facts(path)
    assert 0 < probe(cut).frames < 40
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x10moov" + b"\xff" * 64)
    assert recorded_facts(garbage) is None
    with pytest.raises(ProbeError):
        probe(garbage)
