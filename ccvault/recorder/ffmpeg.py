"""ffmpeg command lines for recording, built as pure functions of the camera's config.

Recording is stream copy only. Timestamps are the host's wall clock at arrival
(`-use_wallclock_as_timestamps`) kept through the output (`-copyts`), so the segment list
ffmpeg writes carries each segment's wall-clock start and end; each file itself starts at 0
(`-reset_timestamps`) so it plays anywhere. Cuts follow the wall clock too
(`-segment_atclocktime`): with absolute timestamps, ffmpeg's pts-based cut would fire at every
keyframe. Files are fragmented MP4: readable up to the last
fragment after a crash, playable by browsers.

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
FRAGMENTED_MP4 = "movflags=+frag_keyframe+empty_moov+default_base_moof"
# Each fragment reaches the disk as soon as it is complete, so a killed recorder leaves a file
# readable up to its last keyframe.
RECORDED_MP4 = FRAGMENTED_MP4 + ":flush_packets=1"
# Live view: a fragment at each keyframe and at least every LIVE_FRAGMENT_US, flushed at once,
# so a viewer is a fraction of a second behind the recorder, whatever the keyframe interval.
LIVE_FRAGMENT_US = 200_000
LIVE_MP4 = f"{FRAGMENTED_MP4}:frag_duration={LIVE_FRAGMENT_US}:flush_packets=1"
LIVE_QUEUE_PACKETS = 120  # the live output's own queue; past it, live packets are dropped


def ffmpeg_binary(config: Config) -> str:
    """A configured system ffmpeg, else the one imageio-ffmpeg ships."""
    if config.recording.ffmpeg_path is not None:
        return str(config.recording.ffmpeg_path)
    return imageio_ffmpeg.get_ffmpeg_exe()


# MP4's own codec tags, for a stream whose input tag MP4 refuses.
MP4_VIDEO_TAGS = {"h264": "avc1", "hevc": "hvc1"}


def fed_video_tag(camera: CameraConfig) -> list[str]:
    """A NUT-fed source (file://, demo://) carries NUT's fourcc (`H264`, `HEVC`): the segment
    muxer drops a tag MP4 refuses, but the live output's fifo passes it on and its MP4 fails
    ("Tag H264 incompatible"), so a fed source's live stream gets MP4's tag by name. A network
    source's input has no tag, and MP4 picks its own."""
    if not needs_feeder(camera):
        return []
    codec = "h264" if camera.scheme == "demo" else _file_codec(camera)
    tag = MP4_VIDEO_TAGS.get(codec or "")
    return ["-tag:v", tag] if tag else []


def _file_codec(camera: CameraConfig) -> str | None:
    """The video codec of a file:// camera's file (its header only), None when unreadable."""
    import av

    parts = urlsplit(camera.url)
    try:
        with av.open(unquote(parts.netloc + parts.path)) as container:
            return container.streams.video[0].codec_context.name
    except (av.FFmpegError, OSError, IndexError):
        return None


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
    live_fd: int | None = None,
) -> list[str]:
    """The stream-copy recorder: one camera into fragmented MP4 segments in run_dir, and
    with `live_fd` the same video as one fragmented MP4 stream on that pipe (`live_output`)."""
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
        "-progress",
        "pipe:1",
        "-stats_period",
        "1",
        str(run_dir / "%06d.mp4"),
        *(live_output(live_fd, camera) if live_fd is not None else []),
    ]


def live_output(fd: int, camera: CameraConfig) -> list[str]:
    """The recorder's second output: its video packets (stream copy, no transcoding) as
    fragmented MP4 on pipe `fd`, for live view (`recorder/live.py`). It goes through the fifo
    muxer, whose own thread and bounded queue take the writes: should the pipe stop being
    read, live packets are dropped (`drop_pkts_on_overflow`) and a write error is survived
    (`attempt_recovery`), where a plain second output would stall the recording with it or end
    it (a broken pipe ends ffmpeg: both seen with ffmpeg 9)."""
    return [
        "-map",
        "0:v:0",
        "-c:v",
        "copy",
        *fed_video_tag(camera),
        "-f",
        "fifo",
        "-fifo_format",
        "mp4",
        "-format_opts",
        LIVE_MP4,
        "-queue_size",
        str(LIVE_QUEUE_PACKETS),
        "-drop_pkts_on_overflow",
        "1",
        "-attempt_recovery",
        "1",
        "-recover_any_error",
        "1",
        "-recovery_wait_time",
        "60",
        f"pipe:{fd}",
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
