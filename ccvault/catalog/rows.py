"""Typed rows handed between the catalog and the rest of ccvault (never bare tuples)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


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

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Segment:
        return cls(**{name: row[name] for name in cls.__slots__})  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class VolumeRow:
    id: int
    name: str
    uuid: str
