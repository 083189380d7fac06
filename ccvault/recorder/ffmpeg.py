"""ffmpeg command lines for recording, built as pure functions of the camera's config.

Recording is stream copy only. Timestamps are the host's wall clock at arrival
(`-use_wallclock_as_timestamps`) kept through the output (`-copyts`), so the segment list
ffmpeg writes carries each segment's wall-clock start and end; each file itself starts at 0
(`-reset_timestamps`) so it plays anywhere. Cuts follow the wall clock too
(`-segment_atclocktime`): with absolute timestamps, ffmpeg's pts-based cut would fire at every
keyframe. Files are fragmented MP4, a fragment at each keyframe and at least every 0.2 s, each
flushed to the file at once: readable up to the last fragment after a crash (0.2 s lost at
most), playable by browsers, and — read as it grows — the camera's live stream
(`recorder/live.py`).

`file://` and `demo://` sources are fed through a second ffmpeg that writes NUT (a streamable
container that carries any codec, so an MJPEG file reaches the recorder and is refused there
with a clear error) to a pipe; the recorder itself is the same stream-copy process for every
source.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import imageio_ffmpeg

from ccvault.config.model import CameraConfig, Config

NETWORK_TIMEOUT_US = 5_000_000  # a dropped camera is noticed within seconds
MP4_AUDIO = {"aac", "mp3", "opus", "alac", "ac3", "eac3", "flac"}
# Recorded files: a fragment at each keyframe and at least every FRAGMENT_US, each reaching the
# file as soon as it is complete: a killed recorder leaves a file readable up to its last
# fragment, and a live viewer is a fraction of a second behind the camera, whatever its
# keyframe interval.
FRAGMENTED_MP4 = "movflags=+frag_keyframe+empty_moov+default_base_moof"
FRAGMENT_US = 200_000
RECORDED_MP4 = f"{FRAGMENTED_MP4}:frag_duration={FRAGMENT_US}:flush_packets=1"


def ffmpeg_binary(config: Config) -> str:
    """A configured system ffmpeg, else the one imageio-ffmpeg ships."""
    if config.recording.ffmpeg_path is not None:
        return str(config.recording.ffmpeg_path)
    return imageio_ffmpeg.get_ffmpeg_exe()


def needs_feeder(camera: CameraConfig) -> bool:
    return camera.scheme in ("file", "demo")


def input_args(camera: CameraConfig, source_url: str) -> list[str]:
    wallclock = ["-use_wallclock_as_timestamps", "1"]
    if needs_feeder(camera):
        # NUT headers describe the streams (nothing to probe) and the feeder paces itself
        # without an initial burst, so every packet is stamped as it arrives.
        return [*wallclock, "-analyzeduration", "0", "-f", "nut", "-i", "pipe:0"]
    # nobuffer: what a camera sends in a burst on connect would otherwise be released all at
    # once, stamped with nearly the same arrival time; it is dropped instead (at most one GOP).
    network = [*wallclock, "-analyzeduration", "1000000", "-fflags", "nobuffer"]
    if camera.scheme in ("rtsp", "rtsps"):
        return [
            "-rtsp_transport",
            "tcp",
            "-timeout",
            str(NETWORK_TIMEOUT_US),
            *network,
            "-i",
            source_url,
        ]
    return ["-rw_timeout", str(NETWORK_TIMEOUT_US), *network, "-i", source_url]


def recorder_argv(
    ffmpeg: str,
    camera: CameraConfig,
    source_url: str,
    segment_seconds: int,
    run_dir: Path,
    audio_codec: str | None = None,
) -> list[str]:
    """The stream-copy recorder: one camera into fragmented MP4 segments in run_dir."""
    audio: list[str] = ["-an"]
    if camera.audio:
        convert = audio_codec is not None and audio_codec not in MP4_AUDIO
        audio = ["-map", "0:a:0?", "-c:a", "aac" if convert else "copy"]
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "info",
        *input_args(camera, source_url),
        "-map",
        "0:v:0",
        "-c:v",
        "copy",
        *audio,
        "-copyts",
        "-f",
        "segment",
        "-segment_time",
        str(segment_seconds),
        "-segment_atclocktime",
        "1",  # cut by the wall clock: segments start at :00, :10, …
        "-reset_timestamps",
        "1",
        "-segment_format",
        "mp4",
        "-segment_format_options",
        RECORDED_MP4,
        "-segment_list",
        str(run_dir / "segments.csv"),
        "-segment_list_type",
        "csv",
        str(run_dir / "%06d.mp4"),
    ]


def feeder_argv(ffmpeg: str, camera: CameraConfig) -> list[str]:
    """The process standing in for a camera: a file replayed in real time, or the demo scene."""
    parts = urlsplit(camera.url)
    head = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
    tail = ["-f", "nut", "pipe:1"]
    if camera.scheme == "file":
        path = unquote(parts.netloc + parts.path)
        return [
            *head,
            "-re",
            "-readrate_initial_burst",
            "0",
            "-stream_loop",
            "-1",
            "-i",
            path,
            "-map",
            "0:v:0",
            "-map",
            "0:a:0?",
            "-c",
            "copy",
            *tail,
        ]
    opts = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    width, height = int(opts.get("width", 640)), int(opts.get("height", 360))
    fps = int(opts.get("fps", 10))
    period = float(opts.get("period", 45))
    return [
        *head,
        "-re",
        "-readrate_initial_burst",
        "0",
        "-f",
        "lavfi",
        "-i",
        demo_scene(width, height, fps, period),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-bf",
        "0",
        "-g",
        str(2 * fps),
        "-pix_fmt",
        "yuv420p",
        *tail,
    ]


def demo_scene(width: int, height: int, fps: int, period: float) -> str:
    """A still server room with sensor noise; every `period` seconds a person-sized block
    walks across it for a quarter of the period (at least 4 s), so motion is rare, as in real
    life, and lasts longer than a keyframe interval, as a person's does."""
    walk = max(4.0, period / 4)
    obj_w, obj_h = max(8, width // 10), max(16, height * 2 // 5)
    x = (
        f"if(lt(mod(t\\,{period})\\,{walk})\\,"
        f"-{obj_w}+mod(t\\,{period})*{(width + obj_w) / walk:.3f}\\,-{2 * obj_w})"
    )
    racks = ",".join(
        f"drawbox=x={width * i // 6}:y={height // 6}:w={width // 8}:h={height * 2 // 3}"
        f":color=0x1c2026:t=fill"
        for i in (1, 2, 4)
    )
    return (
        f"color=c=0x4a5560:s={width}x{height}:r={fps},{racks},"
        f"drawbox=x=0:y={height * 5 // 6}:w={width}:h={height // 6}:color=0x2e3338:t=fill[bg];"
        f"color=c=0xc89a70:s={obj_w}x{obj_h}:r={fps}[obj];"
        f"[bg][obj]overlay=x='{x}':y={height // 3}:shortest=0,noise=alls=3:allf=t"
    )
