"""Counting people on the sampled frames (keyframes) of motion spans.

Why this shape (figures in docs/people-counting.md, measured on hand-labelled vtest.avi):
- The detector is OpenCV's HOG with the Daimler 48x96 people model: its weights ship inside the
  OpenCV wheel (no download, no network at run time) and, once static false alarms are gated
  away, it counts best of what ships in a package; the default 64x128 model needs people
  >= ~100 px tall, so at the same working size it misses more and costs ~1.8x as much.
- The frame is resized so its height is `work_height` before detection: the detector finds
  people of a fixed pixel size, so a fixed working height keeps both recall and cost the same
  for a 576p and a 1080p camera with the same view.
- A background made of the median of the last sampled frames gates detections: a box must
  hold some changed pixels. That removes what never moves (a parked van, a tripod, a rack
  edge), which is most of HOG's false alarms, and lets HOG run only around changed regions.
- Overlapping boxes are suppressed by how much of the smaller box lies in the larger one, so
  a box nested in a person's box goes, while two people side by side both stay.
- A person who stands still long enough becomes background and is no longer counted; a span's
  `people_max` is the largest count, smoothed over neighbouring keyframes (`SpanPeople`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

# One thread, as in motion.detector: one counter per camera runs in parallel with the others,
# and CPU per frame is the budget that matters (8 cameras on about one core).
cv2.setNumThreads(1)

# Small frames for the background: changed-pixel gating needs no detail, and the median of
# 15 frames at this size costs ~2 ms.
BACKGROUND_WIDTH = 192
_OPEN = np.ones((2, 2), np.uint8)
_GROW = np.ones((3, 3), np.uint8)
# A region of interest larger than this fraction of the frame is not worth cropping.
FULL_FRAME_FRACTION = 0.6


class HogMissing(RuntimeError):
    """The installed OpenCV wheel has no HOG people detector."""


@dataclass(frozen=True, slots=True)
class PeopleSettings:
    """How people are counted. Defaults: the configuration chosen on vtest.avi (see docs)."""

    # "daimler": 48x96 window (people >= ~70 px tall); "default": 64x128 (>= ~100 px).
    detector: Literal["daimler", "default"] = "daimler"
    # Height the frame is resized to before detection; pick it so the smallest person to
    # count is at least the window's person height after resizing.
    work_height: int = 864
    win_stride: int = 8
    # Pyramid step: 1.05 counts a little better (span MAE 0.36 vs 0.44) at ~1.5x the CPU.
    scale_step: float = 1.1
    # SVM margin a window needs; Daimler's scores run higher than the default model's.
    hit_threshold: float = 0.8
    # Without a background (the first keyframes) nothing gates the static false alarms.
    cold_hit_threshold: float = 1.4
    # A box is dropped when this fraction of the smaller box lies inside a stronger one.
    nms_overlap: float = 0.65
    # Fraction of a box's pixels that must differ from the background (0: no gating).
    min_changed: float = 0.05
    # Luma difference (0-255) that makes a background pixel "changed".
    change_threshold: int = 20
    # Sampled frames whose per-pixel median is the background, and how old they may be.
    background_frames: int = 15
    background_min_frames: int = 3
    background_max_age_ms: int = 60_000
    # Run HOG only around changed regions once a background exists (saves most of the CPU).
    roi_only: bool = True


@dataclass(frozen=True, slots=True)
class Box:
    """One counted person, in pixels of the frame given to `count`."""

    x: int
    y: int
    w: int
    h: int
    score: float


@dataclass(frozen=True, slots=True)
class PeopleCount:
    """What one frame showed. gated: a background existed, so static detections were dropped."""

    t_ms: int
    count: int
    boxes: tuple[Box, ...]
    gated: bool


def require_hog() -> None:
    """Fail with the fix, not an AttributeError deep in a worker: OpenCV 5 moved HOG out of
    the main wheels into opencv-contrib-python-headless."""
    if not hasattr(cv2, "HOGDescriptor"):
        raise HogMissing(
            f"OpenCV {cv2.__version__} has no HOGDescriptor: in OpenCV 5 it ships in "
            "opencv-contrib-python-headless (install it instead of opencv-python-headless, "
            "never both), or pin opencv-python-headless<5"
        )


def make_hog(detector: str) -> cv2.HOGDescriptor:
    """The HOG descriptor with its bundled people SVM."""
    require_hog()
    if detector == "daimler":
        hog = cv2.HOGDescriptor((48, 96), (16, 16), (8, 8), (8, 8), 9)
        hog.setSVMDetector(cv2.HOGDescriptor.getDaimlerPeopleDetector())
    elif detector == "default":
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())
    else:
        raise ValueError(f"unknown people detector {detector!r}")
    return hog


def to_gray(frame: np.ndarray) -> np.ndarray:
    """HOG on luma counts as well as on colour here and costs less; decoders give luma free."""
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


class Background:
    """Per-pixel median of the last sampled frames: moving people cover a pixel in fewer than
    half of them, so they stay out of it, while a person standing still for about half the
    ring (~12 s at one frame per 1.6 s) joins it."""

    def __init__(self, settings: PeopleSettings) -> None:
        self.settings = settings
        self._ring: deque[tuple[int, np.ndarray]] = deque(maxlen=settings.background_frames)

    def add(self, gray: np.ndarray, t_ms: int) -> None:
        """Take a frame into the background."""
        small = _small(gray)
        self._forget(t_ms, small.shape)
        self._ring.append((t_ms, small))

    def changed(self, gray: np.ndarray, t_ms: int) -> np.ndarray | None:
        """Mask (uint8 0/1, BACKGROUND_WIDTH wide) of pixels that differ from the background
        of earlier frames, then adds this frame; None while too few recent frames exist."""
        small = _small(gray)
        self._forget(t_ms, small.shape)
        mask = None
        if len(self._ring) >= self.settings.background_min_frames:
            median = np.median(np.stack([img for _, img in self._ring]), axis=0)
            diff = cv2.absdiff(small, median.astype(np.uint8))
            mask = (diff > self.settings.change_threshold).astype(np.uint8)
            mask = cv2.dilate(cv2.morphologyEx(mask, cv2.MORPH_OPEN, _OPEN), _GROW)
        self._ring.append((t_ms, small))
        return mask

    def _forget(self, t_ms: int, shape: tuple[int, ...]) -> None:
        """Old frames (another span, other light) and frames of another size are no
        background for this one."""
        max_age = self.settings.background_max_age_ms
        while self._ring and (
            abs(t_ms - self._ring[0][0]) > max_age or self._ring[0][1].shape != shape
        ):
            self._ring.popleft()


def _small(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    out_h = max(1, round(height * BACKGROUND_WIDTH / width))
    small = cv2.resize(gray, (BACKGROUND_WIDTH, out_h), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (3, 3), 0)


@dataclass(slots=True)
class _Raw:
    """Raw detections in working-image pixels, before gating and suppression."""

    rects: list[tuple[int, int, int, int]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


class PeopleCounter:
    """Counts people on one camera's sampled frames; feed them in time order."""

    def __init__(self, settings: PeopleSettings | None = None) -> None:
        self.settings = settings or PeopleSettings()
        self._hog = make_hog(self.settings.detector)
        self._window = tuple(self._hog.winSize)
        self._background = Background(self.settings)

    def __getstate__(self) -> dict:
        """A counter rides in a camera's Carry to the next worker process: the HOG object
        (not picklable, cheap to rebuild) stays behind, the background goes along."""
        return {"settings": self.settings, "background": self._background}

    def __setstate__(self, state: dict) -> None:
        self.settings = state["settings"]
        self._hog = make_hog(self.settings.detector)
        self._window = tuple(self._hog.winSize)
        self._background = state["background"]

    def observe(self, frame: np.ndarray, t_ms: int) -> None:
        """Add a frame to the background without counting: feed the keyframes just before a
        span starts so its first keyframe is already gated and scanned only where it changed."""
        self._background.add(to_gray(frame), t_ms)

    def count(self, frame: np.ndarray, t_ms: int = 0) -> PeopleCount:
        """People on this frame (BGR or gray), judged against the frames fed before it."""
        gray = to_gray(frame)
        mask = self._background.changed(gray, t_ms) if self.settings.min_changed > 0 else None
        scale = self.settings.work_height / gray.shape[0]
        work = _resize(gray, scale)
        raw = self._detect(work, mask)
        keep = self._gate(raw, mask, work.shape)
        keep = suppress(
            [raw.rects[i] for i in keep],
            [raw.scores[i] for i in keep],
            self.settings.nms_overlap,
            keep,
        )
        boxes = tuple(_to_frame(raw.rects[i], raw.scores[i], scale) for i in keep)
        return PeopleCount(t_ms, len(boxes), boxes, mask is not None)

    def _detect(self, work: np.ndarray, mask: np.ndarray | None) -> _Raw:
        """HOG over the whole working image, or only around changed regions."""
        raw = _Raw()
        s = self.settings
        hit = s.cold_hit_threshold if mask is None and s.min_changed > 0 else s.hit_threshold
        if mask is None or not s.roi_only:
            rois = [(0, 0, work.shape[1], work.shape[0])]
        else:
            rois = regions(mask, work.shape, self._window)
        for x, y, w, h in rois:
            self._detect_in(work[y : y + h, x : x + w], x, y, raw, hit)
        return raw

    def _detect_in(self, img: np.ndarray, x0: int, y0: int, raw: _Raw, hit: float) -> None:
        win_w, win_h = self._window
        if img.shape[0] < win_h or img.shape[1] < win_w:
            return
        stride = self.settings.win_stride
        rects, scores = self._hog.detectMultiScale(
            img,
            hitThreshold=hit,
            winStride=(stride, stride),
            padding=(8, 8),
            scale=self.settings.scale_step,
            groupThreshold=0,
        )
        for (x, y, w, h), score in zip(np.reshape(rects, (-1, 4)), np.ravel(scores), strict=True):
            raw.rects.append((int(x) + x0, int(y) + y0, int(w), int(h)))
            raw.scores.append(float(score))

    def _gate(self, raw: _Raw, mask: np.ndarray | None, shape: tuple[int, ...]) -> list[int]:
        """Indices of detections with enough changed pixels (all of them without a mask)."""
        if mask is None:
            return list(range(len(raw.rects)))
        sy, sx = mask.shape[0] / shape[0], mask.shape[1] / shape[1]
        keep = []
        for i, (x, y, w, h) in enumerate(raw.rects):
            x0, y0 = max(0, int(x * sx)), max(0, int(y * sy))
            sub = mask[y0 : int((y + h) * sy) + 1, x0 : int((x + w) * sx) + 1]
            if sub.size and float(sub.mean()) >= self.settings.min_changed:
                keep.append(i)
        return keep


def _resize(gray: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-3:
        return gray
    interpolation = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
    return cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interpolation)


def _to_frame(rect: tuple[int, int, int, int], score: float, scale: float) -> Box:
    x, y, w, h = rect
    return Box(
        round(x / scale), round(y / scale), round(w / scale), round(h / scale), round(score, 3)
    )


def regions(
    mask: np.ndarray, shape: tuple[int, ...], window: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """Rectangles (working-image pixels) around the changed regions, grown by a window so a
    person whose changed pixels are only the moving legs still fits, merged where they touch."""
    height, width = shape[:2]
    sy, sx = height / mask.shape[0], width / mask.shape[1]
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    win_w, win_h = window
    rects = []
    for x, y, w, h, _ in stats[1:count]:
        x0, y0 = max(0, int(x * sx) - win_w), max(0, int(y * sy) - win_h // 2)
        x1 = min(width, int((x + w) * sx) + win_w)
        y1 = min(height, int((y + h) * sy) + win_h // 2)
        rects.append((x0, y0, x1, y1))
    merged = _merge(rects)
    if (
        sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in merged)
        > FULL_FRAME_FRACTION * width * height
    ):
        return [(0, 0, width, height)]
    return [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in merged]


def _merge(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Union overlapping rectangles until none overlap, so no window is scanned twice."""
    out = list(rects)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    out[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


def suppress(
    rects: list[tuple[int, int, int, int]],
    scores: list[float],
    overlap: float,
    ids: list[int] | None = None,
) -> list[int]:
    """Non-maximum suppression by intersection over the smaller box: returns the ids (default
    positions) of the boxes kept, strongest first. HOG fires on a person at several scales and
    offsets, and the nested boxes are what IoU-based NMS lets through."""
    ids = list(range(len(rects))) if ids is None else ids
    if not rects:
        return []
    boxes = np.asarray(rects, np.float64).reshape(-1, 4)
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    kept: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(ids[best])
        inter_w = np.clip(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]), 0, None)
        inter_h = np.clip(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]), 0, None)
        inside = inter_w * inter_h / np.minimum(area[best], area[rest])
        order = rest[inside <= overlap]
    return kept


@dataclass(slots=True)
class SpanPeople:
    """People over one motion span: each keyframe's count is the median of itself and its two
    neighbours (one keyframe of delay), which removes single-frame misses and false alarms;
    people_max is the largest smoothed count."""

    counts: list[int] = field(default_factory=list)

    def add(self, count: int) -> None:
        self.counts.append(count)

    def smoothed(self) -> list[int]:
        """Median of 3 over the span; an end keyframe stands in for its missing neighbour."""
        counts = self.counts
        out = []
        for i, count in enumerate(counts):
            before = counts[i - 1] if i > 0 else count
            after = counts[i + 1] if i + 1 < len(counts) else count
            out.append(sorted((before, count, after))[1])
        return out

    @property
    def people_max(self) -> int:
        return max(self.smoothed(), default=0)
