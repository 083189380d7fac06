"""Labelled motion scenes and their scoring, shared by tests/test_motion.py and bench/motion.py.

Each scene is drawn frame by frame with numpy (a still, textured room with sensor noise, plus
boxes that enter, cross, stop and leave at known times, LEDs, light drift, a lights-on switch)
and encoded with PyAV's libx264 like camera footage: H.264, no B-frames, a keyframe every
`keyint_s`. Because the scene is drawn, its ground truth is exact: an event lasts from the
moment a box appears until it has left.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ccvault.catalog.rows import Span

TOLERANCE_S = 2.5
NOISE_SIGMA = 3.0
LIGHTS_OFF_GAIN = 0.35
LIGHTS_RAMP_S = 0.3

Point = tuple[float, float]


@dataclass(frozen=True)
class Mover:
    """A box (relative size) moving from `start` to `end` (relative centre) over [t0, t1]; with
    `pause` = (a, b) it stands still in the middle of its path from a to b."""

    t0: float
    t1: float
    start: Point
    end: Point
    size: Point = (0.1, 0.4)
    luma: int = 40
    pause: tuple[float, float] | None = None

    def centre(self, t: float) -> Point | None:
        if not self.t0 <= t <= self.t1:
            return None
        return _lerp(self.start, self.end, self._progress(t))

    def _progress(self, t: float) -> float:
        if self.pause is None:
            return (t - self.t0) / (self.t1 - self.t0)
        a, b = self.pause
        if t <= a:
            return 0.5 * (t - self.t0) / (a - self.t0)
        if t <= b:
            return 0.5
        return 0.5 + 0.5 * (t - b) / (self.t1 - b)


def _lerp(a: Point, b: Point, f: float) -> Point:
    return (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f)


@dataclass(frozen=True)
class Scene:
    name: str
    seconds: float
    movers: tuple[Mover, ...] = ()
    keyint_s: float = 1.0
    leds: int = 0
    drift: tuple[float, float] | None = None  # light gain at the start and at the end
    lights_on: float | None = None  # when the lights go on (dark before)
    width: int = 640
    height: int = 360
    fps: int = 10
    seed: int = 1
    noise: float = NOISE_SIGMA  # sensor noise (luma sigma, independent per frame)

    @property
    def events(self) -> list[tuple[float, float]]:
        return sorted((m.t0, m.t1) for m in self.movers)

    def gain(self, t: float) -> float:
        if self.lights_on is not None:
            ramp = min(1.0, max(0.0, (t - self.lights_on) / LIGHTS_RAMP_S))
            return LIGHTS_OFF_GAIN + (1 - LIGHTS_OFF_GAIN) * ramp
        if self.drift is not None:
            a, b = self.drift
            return a + (b - a) * t / self.seconds
        return 1.0


def scene_set() -> list[Scene]:
    """The labelled set: people in a room, LEDs, drift, lights-on, a small corner crossing,
    and a long-GOP clip (keyframe every 5 s) that makes `auto` decode every frame."""
    left, right = (0.04, 0.6), (0.96, 0.6)
    return [
        Scene(
            "room",
            40,
            (
                Mover(4.3, 9.4, left, right),
                Mover(15.6, 25.2, right, (0.5, 0.55), pause=(18.5, 21.5), luma=200),
                Mover(31.2, 35.1, (0.3, 0.05), (0.7, 0.95), size=(0.12, 0.3)),
            ),
            keyint_s=2.0,
        ),
        Scene("leds", 30, leds=4),
        Scene(
            "drift",
            60,
            (Mover(30.5, 34.5, right, left, luma=210),),
            keyint_s=2.0,
            drift=(1.0, 0.55),
        ),
        Scene("lights", 30, (Mover(20.4, 24.4, left, right, luma=30),), lights_on=12.45),
        Scene(
            "corner",
            30,
            (Mover(10.3, 13.1, (0.02, 0.25), (0.25, 0.03), size=(0.05, 0.09), luma=220),),
        ),
        Scene(
            "long_gop",
            40,
            (Mover(8.4, 12.3, left, right), Mover(22.7, 29.1, right, left)),
            keyint_s=5.0,
        ),
    ]


def _room(scene: Scene) -> np.ndarray:
    """A still room: a lit wall gradient, furniture, fine texture (float luma)."""
    rng = np.random.default_rng(scene.seed)
    h, w = scene.height, scene.width
    room = np.tile(np.linspace(90, 160, w, dtype=np.float32), (h, 1))
    room += np.linspace(-20, 20, h, dtype=np.float32)[:, None]
    for _ in range(6):
        x, y = int(rng.integers(0, w - 80)), int(rng.integers(h // 3, h - 40))
        cv2.rectangle(
            room, (x, y), (x + int(rng.integers(40, 160)), h), float(rng.integers(50, 200)), -1
        )
    texture = cv2.GaussianBlur(rng.normal(0, 12, (h, w)).astype(np.float32), (0, 0), 1.5)
    return room + texture


def _draw(scene: Scene, room: np.ndarray, t: float, noise: np.ndarray) -> np.ndarray:
    h, w = scene.height, scene.width
    picture = room.copy()
    for mover in scene.movers:
        centre = mover.centre(t)
        if centre is None:
            continue
        bw, bh = mover.size[0] * w, mover.size[1] * h
        x0, y0 = round(centre[0] * w - bw / 2), round(centre[1] * h - bh / 2)
        cv2.rectangle(picture, (x0, y0), (x0 + round(bw), y0 + round(bh)), float(mover.luma), -1)
    for i in range(scene.leds):
        on = math.sin(t * math.pi * (1 + i) + i) > 0
        x, y = 40 + i * 150, 30 + (i % 2) * 20
        picture[y : y + 4, x : x + 4] = 250.0 if on else 30.0
    picture = picture * scene.gain(t) + noise
    return np.clip(picture, 0, 255).astype(np.uint8)


def render(scene: Scene, path: Path, bit_rate: int | None = None) -> Path:
    """Encode the scene to an MP4 like a camera's (H.264, no B-frames, fixed keyframes):
    constant quality, capped at `bit_rate` when one is given (capped VBR, as cameras do)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(scene.seed + 100)
    noise_bank = rng.normal(0, scene.noise, (7, scene.height, scene.width)).astype(np.float32)
    room = _room(scene)
    chroma = np.full((scene.height // 2, scene.width), 128, np.uint8)
    keyint = round(scene.keyint_s * scene.fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=scene.fps)
        stream.width, stream.height, stream.pix_fmt = scene.width, scene.height, "yuv420p"
        stream.time_base = Fraction(1, scene.fps)
        stream.options = {
            "preset": "veryfast",
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0",
        }
        stream.options = {**stream.options, "crf": "23"}
        if bit_rate is not None:
            stream.options = {
                **stream.options,
                "maxrate": str(bit_rate),
                "bufsize": str(2 * bit_rate),
            }
        for i in range(round(scene.seconds * scene.fps)):
            luma = _draw(scene, room, i / scene.fps, noise_bank[i % len(noise_bank)])
            frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def ensure(scenes: Sequence[Scene], folder: Path) -> dict[str, Path]:
    """Render what is not cached yet (the file name carries the scene's fingerprint)."""
    paths = {}
    for scene in scenes:
        path = folder / f"{scene.name}-{_fingerprint(scene)}.mp4"
        paths[scene.name] = path if path.exists() else render(scene, path)
    return paths


def _fingerprint(scene: Scene) -> str:
    return hashlib.sha256(repr(scene).encode()).hexdigest()[:10]


# --------------------------------------------------------------------------- scoring


@dataclass
class Score:
    events: int = 0
    detected: int = 0
    false_s: float = 0.0
    total_s: float = 0.0
    start_errors: list[float] = field(default_factory=list)
    lighting_misses: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else 1.0

    @property
    def false_fraction(self) -> float:
        return self.false_s / self.total_s if self.total_s else 0.0

    @property
    def max_start_error(self) -> float:
        return max(self.start_errors, default=0.0)


def score(results: Sequence[tuple[Scene, list[Span]]]) -> Score:
    """Recall (a motion span overlapping the event ± TOLERANCE_S), false motion time outside
    all events ± TOLERANCE_S, start-edge errors, and lights-on coming out as lighting."""
    total = Score()
    for scene, spans in results:
        motion = [(s.start_ms / 1000, s.end_ms / 1000) for s in spans if s.kind == "motion"]
        windows = [(a - TOLERANCE_S, b + TOLERANCE_S) for a, b in scene.events]
        total.total_s += scene.seconds
        total.false_s += sum(_outside(span, windows) for span in motion)
        for (a, _end), (wa, wb) in zip(scene.events, windows, strict=True):
            total.events += 1
            hits = [s for s in motion if s[0] <= wb and s[1] >= wa]
            if hits:
                total.detected += 1
                total.start_errors.append(abs(min(s[0] for s in hits) - a))
        if scene.lights_on is not None and not _lighting_near(spans, scene.lights_on):
            total.lighting_misses.append(scene.name)
    return total


def _outside(span: tuple[float, float], windows: list[tuple[float, float]]) -> float:
    """Length of `span` not covered by any window (windows may overlap)."""
    a, b = span
    covered, reach = 0.0, a
    for wa, wb in sorted(windows):
        lo, hi = max(reach, wa), min(b, wb)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return max(0.0, (b - a) - covered)


def _lighting_near(spans: list[Span], t: float) -> bool:
    return any(
        s.kind == "lighting"
        and s.start_ms / 1000 - TOLERANCE_S <= t <= s.end_ms / 1000 + TOLERANCE_S
        for s in spans
    )
