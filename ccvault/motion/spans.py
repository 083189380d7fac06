"""Turning per-frame hits into spans: merge what is close, drop what is too short.

Kept apart from decoding so the same rules apply whether hits come from every frame, from
keyframes only, or from both, and so a span can stay open across segment files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ccvault.catalog.rows import Span
from ccvault.config.policy import MotionSettings
from ccvault.motion.detector import NO_BOX, FrameResult

MOTION = "motion"
LIGHTING = "lighting"


@dataclass(frozen=True, slots=True)
class Hit:
    """One sample that showed activity. It stands for the time until the next sample
    (`until_ms`): a keyframe hit covers its whole keyframe interval. `ends` marks the last
    moving frame found by decoding an edge, which also ends what the keyframe hits covered."""

    kind: str
    t_ms: int
    until_ms: int
    score: float
    area: float
    bbox: tuple[float, float, float, float]
    ends: bool = False
    people: int | None = None  # people counted on this sample (None: not counted)

    @classmethod
    def of(
        cls, result: FrameResult, step_ms: int, ends: bool = False, people: int | None = None
    ) -> Hit:
        kind = LIGHTING if result.lighting else MOTION
        return cls(
            kind,
            result.t_ms,
            result.t_ms + step_ms,
            result.score,
            result.area,
            result.bbox,
            ends,
            people,
        )


@dataclass(slots=True)
class OpenSpan:
    """A span that may still grow; plain data so it pickles into a Carry."""

    kind: str
    start_ms: int
    end_ms: int
    until_ms: int
    peak: float
    area: float
    bbox: tuple[float, float, float, float]
    people_max: int | None = None
    people_from_ms: int = 0  # the most people were first counted then…
    people_until_ms: int = 0  # …and last seen until then

    def extend(self, hit: Hit) -> None:
        self.start_ms = min(self.start_ms, hit.t_ms)
        if hit.ends:
            self.end_ms, self.until_ms = max(self.start_ms, hit.t_ms), hit.until_ms
        else:
            self.end_ms = max(self.end_ms, hit.t_ms)
            self.until_ms = max(self.until_ms, hit.until_ms)
        self.peak = max(self.peak, hit.score)
        self.area = max(self.area, hit.area)
        self.bbox = _union(self.bbox, hit.bbox)
        self.count(hit)

    def count(self, hit: Hit) -> None:
        """The most people seen, and for how long (first to last sample showing that many)."""
        if hit.people is None:
            return
        if self.people_max is None or hit.people > self.people_max:
            self.people_max, self.people_from_ms = hit.people, hit.t_ms
            self.people_until_ms = hit.until_ms
        elif hit.people == self.people_max:
            self.people_until_ms = max(self.people_until_ms, hit.until_ms)

    def span(self) -> Span:
        return Span(
            self.start_ms,
            self.end_ms,
            round(self.peak, 4),
            round(self.area, 4),
            self.kind,
            self.bbox,
            self.people_max,
            self.people_until_ms - self.people_from_ms if self.people_max is not None else 0,
        )


def min_ms(settings: MotionSettings) -> int:
    return round(settings.min_seconds * 1000)


def _union(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    if b == NO_BOX:
        return a
    if a == NO_BOX:
        return b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


class SpanBuilder:
    """Hits in time order in, closed spans out (in `closed`); open spans live in `open`."""

    def __init__(
        self, gap_ms: int, min_ms: int, keep_lighting: bool, open_spans: dict[str, OpenSpan]
    ) -> None:
        self.gap_ms = gap_ms
        self.min_ms = min_ms
        self.keep_lighting = keep_lighting
        self.open = {kind: replace(span) for kind, span in open_spans.items()}
        self.closed: list[Span] = []

    @classmethod
    def for_settings(cls, settings: MotionSettings, open_spans: dict[str, OpenSpan]) -> SpanBuilder:
        return cls(
            round(settings.merge_gap_seconds * 1000),
            min_ms(settings),
            settings.lighting == "event",
            open_spans,
        )

    def add(self, hit: Hit) -> None:
        if hit.kind == LIGHTING and not self.keep_lighting:
            return
        current = self.open.get(hit.kind)
        if current is not None and hit.t_ms - current.until_ms <= self.gap_ms:
            current.extend(hit)
            return
        if current is not None:
            self._close(current)
        span = OpenSpan(hit.kind, hit.t_ms, hit.t_ms, hit.until_ms, hit.score, hit.area, hit.bbox)
        span.count(hit)
        self.open[hit.kind] = span

    def close_idle(self, now_ms: int) -> None:
        """Close spans no later hit could join: nothing for longer than the merge gap."""
        for span in list(self.open.values()):
            if now_ms - span.until_ms > self.gap_ms:
                self._close(span)

    def close_all(self) -> None:
        for span in list(self.open.values()):
            self._close(span)

    def _close(self, span: OpenSpan) -> None:
        del self.open[span.kind]
        # A switch of the lights is instantaneous by nature; min_seconds is about motion.
        if span.kind == LIGHTING or span.until_ms - span.start_ms >= self.min_ms:
            self.closed.append(span.span())

    def result(self) -> list[Span]:
        return sorted(self.closed, key=lambda s: (s.start_ms, s.kind))
