"""Motion analysis of one footage file: the entry point the daemon and `ccvault analyze` call.

Decoding is the whole cost (FIELD_NOTES: every frame ~14x real time per core at 1080p15,
keyframes only ~110x), so the default scan decodes keyframes only and compares consecutive
ones; in `auto` it then fully decodes just the keyframe interval before each start and after
each end of activity to place the edges to the frame. `all` decodes every frame. Decoding is
single-threaded: threads cost more CPU per frame, and parallelism belongs across files.

Limits of the keyframe scans: an event shorter than a keyframe interval that happens entirely
between two keyframes is not seen; `keyframes` mode places starts and ends only to the
keyframe (a start is reported up to one interval late); in `auto`, edges at the very start
or end of a file keep keyframe precision (the neighbouring interval is in another file).
`auto` uses the keyframe scan only when the file's keyframes are at most ~2 s apart and
decodes every frame otherwise, so the file itself says which applies (no wiring needed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from ccvault.catalog.rows import Span
from ccvault.config.policy import MotionSettings
from ccvault.motion.detector import BACKGROUND_TAU_MS, Detector, FrameResult
from ccvault.motion.people import PeopleCounter
from ccvault.motion.source import Source
from ccvault.motion.spans import Hit, OpenSpan, SpanBuilder, min_ms

# auto keyframe-first only when keyframes are this close (2 s plus timestamp jitter).
AUTO_MAX_KEYFRAME_MS = 2100

Render = Callable[[np.ndarray, FrameResult, Detector], None]


@dataclass
class Carry:
    """What the next segment of the same camera continues from: the small background (so its
    start is neither blind nor falsely moving) and spans still open at the end of the file.
    Plain data (~60 KB), so it pickles to worker processes."""

    background: np.ndarray | None = None
    last_ms: int | None = None
    open_spans: dict[str, OpenSpan] = field(default_factory=dict)
    min_ms: int = 0
    people: People | None = None  # the camera's people counting, when it counts people


@dataclass
class People:
    """Counting people on a camera's keyframes while it moves: the counter (its background
    of recent keyframes) and the last counts, whose median makes a keyframe's count — one
    missed or doubled person on a single keyframe does not make a span's maximum."""

    counter: PeopleCounter = field(default_factory=PeopleCounter)
    recent: list[int] = field(default_factory=list)

    def sample(self, full: np.ndarray, t_ms: int, moving: bool) -> int | None:
        if not moving:
            self.counter.observe(full, t_ms)
            self.recent = []
            return None
        self.recent = [*self.recent[-2:], self.counter.count(full, t_ms).count]
        padded = (self.recent * 3)[:3] if len(self.recent) < 3 else self.recent
        return sorted(padded)[1]


@dataclass
class Analysis:
    spans: list[Span]
    carry: Carry
    frames_decoded: int
    keyframes: int
    mode: str


def analyze(
    path: Path,
    settings: MotionSettings,
    *,
    start_ms: int = 0,
    carry: Carry | None = None,
    debug_video: Path | None = None,
) -> Analysis:
    """Closed spans of `path` at absolute times (start_ms + offset in the file); a span still
    active at the end stays open in the returned carry. Raises MediaError for unusable files.
    A debug video shows every frame, so asking for one decodes every frame (mode `all`)."""
    carry = carry or Carry()
    builder = SpanBuilder.for_settings(settings, carry.open_spans)
    people = (carry.people or People()) if settings.people else None
    with Source(path, start_ms) as src:
        mode = _mode(settings, src, debug_video is not None)
        src.keep_full = people is not None
        # Keyframes 1-2 s apart are compared one with the next: a running average over them
        # would keep the ghost of what left for several keyframes.
        tau_ms = BACKGROUND_TAU_MS if mode == "all" else 0
        detector = Detector(settings, carry.background, carry.last_ms, tau_ms)
        if mode == "all":
            _scan_all(src, detector, builder, debug_video)
        else:
            _KeyframeScan(src, detector, builder, settings, mode == "auto", people).run()
        builder.close_idle(src.end_ms)
    new_carry = Carry(detector.background, detector.last_ms, builder.open, min_ms(settings), people)
    return Analysis(builder.result(), new_carry, src.frames_decoded, src.keyframes, mode)


def finish(carry: Carry) -> list[Span]:
    """Close whatever is open: the end of an import, or of a one-off file."""
    builder = SpanBuilder(0, carry.min_ms, True, carry.open_spans)
    builder.close_all()
    return builder.result()


def _mode(settings: MotionSettings, src: Source, debug: bool) -> str:
    if debug or settings.mode == "all":
        return "all"
    if settings.mode == "keyframes":
        return "keyframes"
    return "auto" if src.keyframe_interval_ms <= AUTO_MAX_KEYFRAME_MS else "all"


def _scan_all(
    src: Source, detector: Detector, builder: SpanBuilder, debug_video: Path | None
) -> None:
    if debug_video is None:
        _feed_all(src, detector, builder, None)
        return
    from ccvault.motion.debug import DebugVideo  # only the tuning tool needs an encoder

    with DebugVideo(debug_video, detector.settings, src.rate) as video:
        _feed_all(src, detector, builder, video.frame)


def _feed_all(src: Source, detector: Detector, builder: SpanBuilder, render: Render | None) -> None:
    for img, t_ms in src.frames():
        result = detector.feed(img, t_ms)
        if result.moving or result.lighting:
            builder.add(Hit.of(result, src.frame_ms))
        if render is not None:
            render(img, result, detector)


class _KeyframeScan:
    """Keyframes in order, each compared with the background of the ones before; with
    `refine`, the interval before a first hit and after a last hit is decoded fully."""

    def __init__(
        self,
        src: Source,
        detector: Detector,
        builder: SpanBuilder,
        settings: MotionSettings,
        refine: bool,
        people: People | None = None,
    ) -> None:
        self.src, self.detector, self.builder = src, detector, builder
        self.settings, self.refine, self.people = settings, refine, people
        self.prev: tuple[np.ndarray, FrameResult] | None = None
        self.prev_gop: list[av.Packet] = []

    def run(self) -> None:
        for gop, img, t_ms in self.src.keyframes_with_gops(keep_gops=self.refine):
            result = self.detector.feed(img, t_ms)
            if self.refine and self.prev is not None:
                self._edges(gop, img, result)
            count = None
            if self.people is not None and self.src.last_full is not None:
                count = self.people.sample(self.src.last_full, t_ms, result.moving)
            if result.moving or result.lighting:
                self.builder.add(Hit.of(result, self.src.keyframe_interval_ms, people=count))
            self.prev_gop, self.prev = gop, (img, result)

    def _edges(self, gop: list[av.Packet], img: np.ndarray, result: FrameResult) -> None:
        prev_img, prev = self.prev  # type: ignore[misc]
        if result.moving and not prev.moving:
            start = self._first(gop, prev_img, prev.t_ms, moving=True)
            if start is not None:
                self.builder.add(Hit.of(start, self.src.frame_ms))
        elif prev.moving and not result.moving and self.prev_gop:
            # Consecutive keyframes are compared, so a quiet keyframe equals the last moving
            # one: what moved settled (or left) in the interval before that one.
            settled = self._first(self.prev_gop, prev_img, prev.t_ms, moving=False)
            end = settled.t_ms - self.src.frame_ms if settled is not None else prev.t_ms
            self.builder.add(Hit.of(FrameResult(end, moving=True), self.src.frame_ms, ends=True))

    def _first(
        self, gop: list[av.Packet], ref: np.ndarray, ref_ms: int, moving: bool
    ) -> FrameResult | None:
        """The first frame of the interval after its keyframe that differs from (moving=True)
        or matches (moving=False) the reference; decoding stops there."""
        detector = Detector(self.settings, ref, ref_ms, tau_ms=math.inf)
        frames = self.src.decode_gop(gop)
        next(frames, None)  # the keyframe itself was judged by the scan
        for img, t_ms in frames:
            result = detector.feed(img, t_ms)
            if result.moving == moving:
                frames.close()
                return result
        return None
