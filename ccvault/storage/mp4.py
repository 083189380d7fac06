"""ISO BMFF (MP4) boxes read directly, for the fragmented MP4 ccvault's recorders write.

Three readers need a segment's boxes without a demuxer: ingest's probe (`media.probe`), which
reads a recorded segment's facts from its moov and moofs at a quarter of PyAV's cost; the
live relay (`recorder/live.py`), which forwards fragments as the file grows; and the recorder,
which tells frames arriving by the file gaining fragments (`holds_fragment`). Only what they
need is parsed (ISO/IEC 14496-12: tkhd, mdhd, hdlr, stsd, trex, tfhd, tfdt, trun); anything
unexpected raises `ValueError` (or `struct.error` for a box cut short inside), and the probe
then asks PyAV.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NON_SYNC = 0x00010000  # sample_flags: sample_is_non_sync_sample


def header(data: bytes, at: int = 0) -> tuple[bytes, int, int]:
    """(type, header size, box size) read from the 8 or 16 bytes at `at` (size 0, "to the end
    of the file", is returned as 0)."""
    size, kind = struct.unpack_from(">I4s", data, at)
    if size == 1:
        return kind, 16, struct.unpack_from(">Q", data, at + 8)[0]
    return kind, 8, size


def top_level(fd: int, size: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset, size) of each box of an open file of `size` bytes, header by header;
    `ValueError` at a box cut short or "to the end of the file" (size 0)."""
    pos = 0
    while pos < size:
        kind, _, box_size = header(os.pread(fd, 16, pos))
        if box_size < 8 or pos + box_size > size:
            raise ValueError("box cut short")
        yield kind, pos, box_size
        pos += box_size


def holds_fragment(path: Path) -> bool:
    """Whether the file holds a whole moof yet: frames were muxed into it. Read from the
    top-level box headers (a recorded file starts ftyp, moov: a few reads); False for a file
    missing, cut short, or laid out otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return any(kind == b"moof" for kind, _, _ in top_level(fd, os.fstat(fd).st_size))
    except (ValueError, OSError, struct.error):  # read as it grew: the next look tells
        return False
    finally:
        os.close(fd)


def box_at(data: bytes, at: int, end: int) -> tuple[bytes, int, int] | None:
    """(type, header size, box size) of the box at `at`, None when it does not fit before end."""
    if at + 8 > end or (at + 16 > end and struct.unpack_from(">I", data, at)[0] == 1):
        return None
    kind, head, size = header(data, at)
    if size < head or at + size > end:
        return None
    return kind, head, size


def boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, whole box) of each complete box in data, in order (children of a container)."""
    at = 0
    while (box := box_at(data, at, len(data))) is not None:
        yield box[0], data[at : at + box[2]]
        at += box[2]


def children(data: bytes, at: int, skip: int = 0) -> dict[bytes, list[int]]:
    """Offsets of the children of the box at `at`, by type (`skip`: bytes before them)."""
    found = box_at(data, at, len(data))
    if found is None:
        raise ValueError("box cut short")
    _, header, size = found
    kids: dict[bytes, list[int]] = {}
    child, end = at + header + skip, at + size
    while (box := box_at(data, child, end)) is not None:
        kids.setdefault(box[0], []).append(child)
        child += box[2]
    return kids


def find_at(data: bytes, at: int, path: list[bytes]) -> int | None:
    """Offset of the first box down `path` from the box at `at` (None: not there)."""
    for kind in path:
        kids = children(data, at).get(kind)
        if not kids:
            return None
        at = kids[0]
    return at


def traks(moov: bytes) -> list[int]:
    return children(moov, 0).get(b"trak", [])


def sample_description(moov: bytes, trak: int) -> bytes | None:
    """A track's stsd box (its codec setup: the sample entries)."""
    at = find_at(moov, trak, [b"mdia", b"minf", b"stbl", b"stsd"])
    if at is None:
        return None
    found = box_at(moov, at, len(moov))
    return moov[at : at + found[2]] if found is not None else None


@dataclass(frozen=True, slots=True)
class Track:
    """What a moov says of one track."""

    track_id: int
    handler: bytes  # b"vide", b"soun", ...
    timescale: int
    entry: bytes  # the first sample entry's type (b"avc1", b"hvc1", b"mp4a", ...)
    width: int  # of a video sample entry (0 otherwise)
    height: int
    edited: bool  # an edit list: decode times are not presentation times as they stand


def tracks(moov: bytes) -> list[Track]:
    found = []
    for trak in traks(moov):
        tkhd, mdhd, hdlr = (find_at(moov, trak, p) for p in _TRACK_PATHS)
        stsd = sample_description(moov, trak)
        if tkhd is None or mdhd is None or hdlr is None or stsd is None or len(stsd) < 24:
            raise ValueError("a track without tkhd, mdhd, hdlr or stsd")
        handler = moov[hdlr + 16 : hdlr + 20]
        visual = handler == b"vide" and len(stsd) >= 52  # a visual sample entry's size
        width, height = struct.unpack_from(">HH", stsd, 16 + 32) if visual else (0, 0)
        found.append(
            Track(
                track_id=struct.unpack_from(">I", moov, tkhd + (28 if moov[tkhd + 8] else 20))[0],
                handler=handler,
                timescale=struct.unpack_from(">I", moov, mdhd + (28 if moov[mdhd + 8] else 20))[0],
                entry=stsd[20:24],
                width=width,
                height=height,
                edited=find_at(moov, trak, [b"edts"]) is not None,
            )
        )
    return found


_TRACK_PATHS = ([b"tkhd"], [b"mdia", b"mdhd"], [b"mdia", b"hdlr"])


@dataclass(frozen=True, slots=True)
class TrackDefaults:
    """A track's defaults for fragments that give none (moov/mvex/trex)."""

    duration: int = 0
    size: int = 0
    flags: int = 0


def trex_defaults(moov: bytes) -> dict[int, TrackDefaults]:
    mvex = children(moov, 0).get(b"mvex", [])
    trexes = children(moov, mvex[0]).get(b"trex", []) if mvex else []
    return {
        struct.unpack_from(">I", moov, at + 12)[0]: TrackDefaults(
            *struct.unpack_from(">III", moov, at + 20)
        )
        for at in trexes
        if at + 32 <= len(moov)
    }


@dataclass(frozen=True, slots=True)
class TrackFragment:
    """One track's samples in a moof: where its tfdt is, and each sample's fields."""

    track_id: int
    tfdt_at: int  # offset of the tfdt box in the moof
    start: int  # its base media decode time (track timescale)
    durations: tuple[int, ...]
    sizes: tuple[int, ...]
    flags: tuple[int, ...]
    offsets: tuple[int, ...]  # composition time offsets (pts - dts)

    @property
    def duration(self) -> int:
        return sum(self.durations)


def track_fragments(moof: bytes, defaults: dict[int, TrackDefaults]) -> list[TrackFragment]:
    """Each track fragment of a moof, its samples read from its truns (else the tfhd's
    defaults, else the track's trex defaults)."""
    found = []
    for traf in children(moof, 0).get(b"traf", []):
        kids = children(moof, traf)
        if not all(k in kids for k in (b"tfhd", b"tfdt", b"trun")):
            raise ValueError("track fragment without tfhd, tfdt or trun")
        tfhd, tfdt = kids[b"tfhd"][0], kids[b"tfdt"][0]
        track = struct.unpack_from(">I", moof, tfhd + 12)[0]
        start = struct.unpack_from(">Q" if moof[tfdt + 8] == 1 else ">I", moof, tfdt + 12)[0]
        base = _tfhd_defaults(moof, tfhd, defaults.get(track, TrackDefaults()))
        fields: list[tuple[int, ...]] = [(), (), (), ()]
        for trun in kids[b"trun"]:
            for i, column in enumerate(_trun(moof, trun, base)):
                fields[i] += column
        found.append(TrackFragment(track, tfdt, start, *fields))
    return found


def _tfhd_defaults(moof: bytes, tfhd: int, trex: TrackDefaults) -> TrackDefaults:
    flags = struct.unpack_from(">I", moof, tfhd + 8)[0] & 0xFFFFFF
    at = tfhd + 16 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
    values = []
    for bit, default in ((0x8, trex.duration), (0x10, trex.size), (0x20, trex.flags)):
        if flags & bit:
            values.append(struct.unpack_from(">I", moof, at)[0])
            at += 4
        else:
            values.append(default)
    return TrackDefaults(*values)


_TRUN_FIELDS = (0x100, 0x200, 0x400, 0x800)  # duration, size, flags, composition offset


def _trun(moof: bytes, trun: int, base: TrackDefaults) -> list[tuple[int, ...]]:
    """The trun's samples as columns: durations, sizes, flags, composition offsets."""
    version = moof[trun + 8]
    flags = struct.unpack_from(">I", moof, trun + 8)[0] & 0xFFFFFF
    count = struct.unpack_from(">I", moof, trun + 12)[0]
    at = trun + 16 + (4 if flags & 0x1 else 0)
    first_flags = None
    if flags & 0x4:
        first_flags = struct.unpack_from(">I", moof, at)[0]
        at += 4
    present = [bit for bit in _TRUN_FIELDS if flags & bit]
    if at + 4 * len(present) * count > trun + struct.unpack_from(">I", moof, trun)[0]:
        raise ValueError("trun cut short")
    values = struct.unpack_from(f">{len(present) * count}I", moof, at)
    columns = {bit: values[i :: len(present)] for i, bit in enumerate(present)}
    fallback = {0x100: base.duration, 0x200: base.size, 0x400: base.flags, 0x800: 0}
    out = [columns.get(bit, (fallback[bit],) * count) for bit in _TRUN_FIELDS]
    if first_flags is not None and count and 0x400 not in columns:
        out[2] = (first_flags, *out[2][1:])
    if version == 1 and 0x800 in columns:  # signed offsets
        out[3] = tuple(v - (1 << 32) if v >= 1 << 31 else v for v in out[3])
    return out
