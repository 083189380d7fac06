"""Typed rows handed between the catalog and the rest of ccvault (never bare tuples)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import IntEnum, StrEnum


class AnalysisState(IntEnum):
    """A segment's motion analysis (the `analysis` column; partial indexes in the schema name
    the numbers, so SQL keeps them as literals)."""

    WAITING = 0
    ANALYSED = 1
    NOT_ANALYSED = 2  # motion disabled for the camera, or the file could not be decoded
    BY_IMPORT = 3  # being analysed by the `ccvault import` that stored it (until it ends)


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What probing a segment file tells: enough to index it without opening it again."""

    duration_ms: int
    codec: str
    width: int
    height: int
    frames: int
    keyframes: int


@dataclass(frozen=True, slots=True)
class NewSegment:
    camera: str
    volume: str
    start_ms: int
    end_ms: int
    path: str  # relative to the volume root
    bytes: int
    sha256: str
    media: MediaInfo
    origin: str  # recorded | imported | adopted
    analysis: AnalysisState = AnalysisState.WAITING


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    camera: str
    volume: str
    start_ms: int
    end_ms: int
    path: str
    bytes: int
    sha256: str
    codec: str
    width: int
    height: int
    frames: int
    origin: str
    state: str
    analysis: AnalysisState
    activity: int  # 1: the padded range overlaps a motion or lighting span
    integrity: str  # unchecked | ok | corrupt: the latest re-hash (scrub or `ccvault verify`)
    node: str | None  # the node whose volume holds it (None: not claimed by a node yet)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Segment:
        """By column name, in the fields' order (positional: a search builds thousands)."""
        values = [row[name] for name in _SEGMENT_FIELDS]
        values[_ANALYSIS] = AnalysisState(values[_ANALYSIS])
        return cls(*values)


_SEGMENT_FIELDS: tuple[str, ...] = Segment.__slots__  # type: ignore[attr-defined]
_ANALYSIS = _SEGMENT_FIELDS.index("analysis")


@dataclass(frozen=True, slots=True)
class Span:
    """Activity found in footage: first to last moving frame (unpadded), UTC ms."""

    start_ms: int
    end_ms: int
    peak: float  # highest motion score, 0-1
    area: float  # largest moving fraction of the frame, 0-1
    kind: str  # motion | lighting
    bbox: tuple[float, float, float, float]  # union of moving regions, relative x0, y0, x1, y1
    people_max: int | None = None  # most people counted on one sampled frame (None: not counted)
    people_max_ms: int = 0  # how long that count was seen


@dataclass(frozen=True, slots=True)
class StoredSpan:
    id: int
    camera: str
    span: Span
    open: bool  # still going on at the end of the newest analysed segment

    @classmethod
    def from_row(cls, camera: str, r: sqlite3.Row) -> StoredSpan:
        """From a `motion_spans` row (the columns of `SPAN_COLUMNS`), by name."""
        span = Span(
            r["start_ms"],
            r["end_ms"],
            r["peak"],
            r["area"],
            r["kind"],
            (r["x0"], r["y0"], r["x1"], r["y1"]),
            r["people_max"],
            r["people_max_ms"],
        )
        return cls(r["id"], camera, span, bool(r["open"]))


# The columns StoredSpan.from_row reads.
SPAN_COLUMNS = (
    "id, start_ms, end_ms, peak, area, kind, x0, y0, x1, y1, open, people_max, people_max_ms"
)


@dataclass(frozen=True, slots=True)
class VolumeRow:
    id: int
    name: str
    uuid: str


@dataclass(frozen=True, slots=True)
class Intent:
    """A file operation recorded before it touches a file (catalog table `intents`)."""

    id: int
    kind: str  # delete | migrate | thin
    segment_id: int
    src_volume: str
    src_path: str
    dst_volume: str | None
    dst_path: str | None


@dataclass(frozen=True, slots=True)
class PlannedMove:
    """A copy to be made: a segment, and where its new copy will lie."""

    segment_id: int
    dst_volume: str
    dst_path: str  # relative to the destination volume's root


@dataclass(frozen=True, slots=True)
class Switch:
    """A verified new copy of a segment, ready to become the one the row points at."""

    intent: Intent
    bytes: int
    sha256: str
    frames: int


@dataclass(frozen=True, slots=True)
class NewHold:
    from_ms: int
    to_ms: int
    until_ms: int | None
    reason: str
    actor: str
    cameras: tuple[str, ...]  # empty: every camera
    id: int | None = None  # set only when rebuilding a hold from the audit log
    created_ms: int | None = None

    def as_json(self) -> dict:
        return {
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "until_ms": self.until_ms,
            "reason": self.reason,
            "actor": self.actor,
            "cameras": list(self.cameras),
            "created_ms": self.created_ms,
        }


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert as the catalog keeps it (one row per firing, or per one-off event)."""

    name: str
    fingerprint: str
    labels: dict[str, str]
    severity: str
    summary: str
    details: dict[str, str]
    started_ms: int
    event: bool = False
    resolved_ms: int | None = None
    notified_ms: int | None = None
    id: int | None = None
    notices: int = 0
    node: str | None = None  # the node that fired it (None: from before nodes)


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class Result(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    FORCED = "forced"
    HELD_OPEN = "held_open"


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One event as stored: checked, its room resolved from the door."""

    event_id: str
    time_ms: int
    door: str
    room: str
    person: str
    role: str | None
    direction: Direction
    result: Result


class Flag(StrEnum):
    NO_ENTRY = "no_entry"
    ENTERED_TWICE = "entered_twice"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A catalogued event: its row id orders events at the same millisecond."""

    id: int
    time_ms: int
    door: str
    person: str
    role: str | None
    direction: Direction
    result: Result


@dataclass(frozen=True, slots=True)
class Visit:
    key_event: int
    person: str
    role: str | None
    entered_ms: int | None
    left_ms: int | None
    doors: tuple[str, ...] = ()
    escorted_by: tuple[str, ...] = ()
    flags: tuple[Flag, ...] = ()

    def overlaps(self, other: Visit) -> bool:
        start = self.entered_ms if self.entered_ms is not None else self.left_ms
        other_start = other.entered_ms if other.entered_ms is not None else other.left_ms
        assert start is not None and other_start is not None
        ends_after = self.left_ms is None or other_start <= self.left_ms
        return ends_after and (other.left_ms is None or start <= other.left_ms)


@dataclass(frozen=True, slots=True)
class StoredVisit:
    id: int
    room: str
    visit: Visit


@dataclass(frozen=True, slots=True)
class FilePosition:
    """How far a followed file was read: which file (device, inode), to which byte and line."""

    device: int
    inode: int
    offset: int
    line: int
