"""Decoding footage for motion analysis: every frame, keyframes only, or chosen intervals.

One demuxing pass first indexes the file (keyframe interval, frame step, end), which costs
milliseconds and decides what `auto` does. Keyframes are then decoded with the decoder told to
skip everything else; the packets since the last keyframe are kept (compressed, ~1 MB) so an
interval can be replayed fully when it turns out to hold an edge, without seeking.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from ccvault.errors import reason
from ccvault.host import logs
from ccvault.motion.detector import small_luma
from ccvault.storage.media import PROBE_OPTIONS

log = logs.get_logger("ccvault.motion")  # structlog only if it logs (`ccvault analyze`)

# Motion at 320 px does not need H.264's deblocking filter: skipping it makes decoding ~25 %
# cheaper (bench/motion.py), and decoding is the whole cost.
DECODER_OPTIONS = {"skip_loop_filter": "all"}
DEFAULT_FRAME_MS = 100
_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError)


class MediaError(Exception):
    """The file cannot be analysed (not video, unreadable, nothing decodable); says why."""


class Source:
    """One video file; times are absolute ms (start_ms + offset from the first frame)."""

    def __init__(self, path: Path, start_ms: int) -> None:
        self.path = path
        self.start_ms = start_ms
        self.frames_decoded = 0
        self.keyframes = 0
        self.errors = 0
        # People are counted at full resolution: with keep_full, each keyframe's luma plane
        # is kept here (the decoder made it anyway; the motion scan itself needs only 320 px).
        self.keep_full = False
        self.last_full: np.ndarray | None = None
        self._index()
        self.container, self.stream = _open(path)
        self.ctx = self.stream.codec_context

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.container.close()
        if self.errors:
            log.warning("motion.decode_errors", path=str(self.path), packets=self.errors)

    def _index(self) -> None:
        container, stream = _open(self.path)
        with container:
            self.time_base = stream.time_base
            rate = stream.average_rate or stream.guessed_rate
            self.rate = rate if rate else 1000 // DEFAULT_FRAME_MS
            self.frame_ms = round(1000 / float(self.rate))
            key_pts, first, end = [], None, None
            for packet in _packets(container, stream):
                first = packet.pts if first is None else min(first, packet.pts)
                end = max(end or 0, packet.pts + (packet.duration or 0))
                if packet.is_keyframe:
                    key_pts.append(packet.pts)
        if first is None or not key_pts:
            raise MediaError("no video frames" if first is None else "no keyframe")
        self.first_pts = stream.start_time if stream.start_time is not None else first
        self.end_ms = self.ms(end)
        gaps = [self.ms(b) - self.ms(a) for a, b in itertools.pairwise(key_pts)]
        # One keyframe: the whole file is one interval.
        self.keyframe_interval_ms = (
            round(statistics.median(gaps)) if gaps else self.end_ms - self.start_ms
        )

    def ms(self, pts: int) -> int:
        return self.start_ms + round(float((pts - self.first_pts) * self.time_base) * 1000)

    def frames(self) -> Iterator[tuple[np.ndarray, int]]:
        """Every frame, small luma and time."""
        self.ctx.skip_frame = "DEFAULT"
        for packet in _packets(self.container, self.stream):
            self.keyframes += bool(packet.is_keyframe)
            yield from self._decode(packet)
        yield from self._drain()
        self._require_frames()

    def keyframes_with_gops(
        self, keep_gops: bool
    ) -> Iterator[tuple[list[av.Packet], np.ndarray, int]]:
        """Each keyframe (small luma, time) with the packets of the interval before it."""
        self.ctx.skip_frame = "NONKEY"
        gop: list[av.Packet] = []
        for packet in _packets(self.container, self.stream):
            if not packet.is_keyframe:
                if keep_gops:
                    gop.append(packet)
                continue
            self.keyframes += 1
            # Drained at once: with B-frames a decoder would hold the picture back.
            decoded = [*self._decode(packet), *self._drain()]
            if decoded:
                yield gop, *decoded[0]
            gop = [packet]
        self._require_frames()

    def decode_gop(self, gop: list[av.Packet]) -> Iterator[tuple[np.ndarray, int]]:
        """Every frame of one keyframe interval; stopping early is fine."""
        self.ctx.skip_frame = "DEFAULT"
        try:
            for packet in gop:
                yield from self._decode(packet)
            yield from self._drain()
        finally:
            self.ctx.flush_buffers()
            self.ctx.skip_frame = "NONKEY"

    def _decode(self, packet: av.Packet | None) -> Iterator[tuple[np.ndarray, int]]:
        try:
            frames = self.ctx.decode(packet)
        except av.error.FFmpegError:
            self.errors += 1  # a damaged packet costs its picture, not the file
            return
        for frame in frames:
            if frame.pts is None:
                continue
            self.frames_decoded += 1
            if self.keep_full and self.ctx.skip_frame == "NONKEY":
                self.last_full = frame.to_ndarray(format="gray")
            yield small_luma(frame), self.ms(frame.pts)

    def _drain(self) -> Iterator[tuple[np.ndarray, int]]:
        yield from self._decode(None)
        self.ctx.flush_buffers()

    def _require_frames(self) -> None:
        if self.frames_decoded == 0:
            raise MediaError("no decodable video frames")


def _open(path: Path) -> tuple[av.container.InputContainer, av.VideoStream]:
    """Open with cheap probing, falling back to full probing (MPEG-TS needs it)."""
    for options in (PROBE_OPTIONS, {}):
        try:
            container = av.open(str(path), options=options, metadata_errors="ignore")
        except _AV_ERRORS as exc:
            raise MediaError(f"unreadable: {reason(exc)}") from None
        streams = container.streams.video
        if streams and streams[0].codec_context.name:
            streams[0].thread_count = 1  # CPU per frame is the budget (module docstring)
            streams[0].codec_context.options = dict(DECODER_OPTIONS)
            return container, streams[0]
        container.close()
    raise MediaError("no video stream")


def _packets(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.Packet]:
    """Packets with data and a time; a damaged tail ends the file instead of the analysis."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except _AV_ERRORS as exc:
            log.warning("motion.demux_error", error=str(exc))
            return
        if packet.size and packet.pts is not None:
            yield packet
