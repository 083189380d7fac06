"""Live view: each camera's segment files, read as its recorder writes them, fanned out to viewers.

The recorder writes fragmented MP4 with a fragment at each keyframe and at least every 0.2 s,
flushed at once (`ffmpeg.RECORDED_MP4`), so the file being written is already a live stream: the
init segment (ftyp + moov), then fragments (moof + mdat). While a camera has viewers, one thread
here (`LiveRelay`) reads what its recorder appended to the current segment file every
`POLL_S`, splits it into top-level boxes and hands each fragment to every viewer; at the next
segment it goes on in the next file, its decode times shifted to run on from the last
(`shift_decode_time`), so the viewer sees one unbroken stream. With no viewer, live view costs
nothing: no second ffmpeg output, no pipe, no thread woken. (A second output through ffmpeg's
fifo muxer, read here whether watched or not, cost 0.08 % of a core per camera in ffmpeg alone:
a third of bare recording; bench/README.)

Recording never waits for a viewer: ffmpeg writes its file whoever reads it, and the relay only
copies bytes into each viewer's bounded buffer (`Viewer.push`) and never blocks; a viewer whose
buffer is full (a slow or stalled client) is dropped, not waited for. A newcomer gets the init
segment and the fragments since the last keyframe, so its picture starts at once. One camera
connection serves every viewer: viewers never reach the camera.
"""

from __future__ import annotations

import collections
import enum
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog

from ccvault.host import threads

log = structlog.get_logger("ccvault.live")

POLL_S = 0.1  # how often a watched camera's segment file is read for what was appended
INIT_BYTES = 64 * 1024  # an init segment (ftyp + moov of one video track) is far smaller
FILES_KEPT = (
    3  # a camera's newest segment files the relay knows of (a tail is at most a step behind)
)
MAX_BOX = 32 * 1024 * 1024  # a box larger than this is no live fragment: the stream is dropped
GOP_LIMIT = 3 * 1024 * 1024  # fragments kept for newcomers (since the last keyframe), at most
# Bytes a viewer may lag by before it is dropped: a newcomer's keyframe start and then some.
VIEWER_BUFFER = 2 * GOP_LIMIT
NON_SYNC = 0x00010000  # ISO/IEC 14496-12 sample_flags: sample_is_non_sync_sample


class ViewerEnd(enum.Enum):
    """Why a viewer's stream ended."""

    STREAM_ENDED = "stream_ended"  # the recorder's run ended (restart, camera lost, stop)
    TOO_SLOW = "too_slow"  # its buffer overflowed: it was dropped
    LEFT = "left"  # the client went away


def boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, whole box) of each complete box in data, in order (children of a container)."""
    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        if size == 1 and at + 16 <= len(data):
            size = struct.unpack_from(">Q", data, at + 8)[0]
        if size < 8 or at + size > len(data):
            return
        yield kind, data[at : at + size]
        at += size


def _header(box: bytes) -> int:
    return 16 if struct.unpack_from(">I", box)[0] == 1 else 8


def _child(box: bytes, kind: bytes, skip: int = 0) -> bytes | None:
    """The first child of `kind` of a container box (`skip`: bytes before its children)."""
    body = box[_header(box) + skip :]
    return next((b for k, b in boxes(body) if k == kind), None)


def starts_with_keyframe(moof: bytes) -> bool:
    """Whether a fragment's first sample is a sync sample (a decoder can start there): its
    trun's first_sample_flags, else its first sample's flags, else the tfhd default."""
    traf = _child(moof, b"traf")
    if traf is None:
        return False
    tfhd, trun = _child(traf, b"tfhd"), _child(traf, b"trun")
    if tfhd is None or trun is None:
        return False
    flags: int | None = None
    t_flags = struct.unpack_from(">I", tfhd, 8)[0] & 0xFFFFFF
    if t_flags & 0x20:  # default-sample-flags-present
        at = 16 + (8 if t_flags & 0x1 else 0) + sum(4 for b in (0x2, 0x8, 0x10) if t_flags & b)
        flags = struct.unpack_from(">I", tfhd, at)[0]
    r_flags = struct.unpack_from(">I", trun, 8)[0] & 0xFFFFFF
    at = 16 + (4 if r_flags & 0x1 else 0)
    if r_flags & 0x4:  # first-sample-flags-present
        flags = struct.unpack_from(">I", trun, at)[0]
    elif r_flags & 0x400:  # sample-flags-present: the first sample's own
        at += (4 if r_flags & 0x100 else 0) + (4 if r_flags & 0x200 else 0)
        flags = struct.unpack_from(">I", trun, at)[0]
    return flags is not None and not flags & NON_SYNC


AUDIO_CODECS = {
    b"mp4a": "mp4a.40.2",
    b"Opus": "opus",
    b"fLaC": "flac",
    b"ac-3": "ac-3",
    b"ec-3": "ec-3",
}


def codec_string(init: bytes) -> str:
    """The RFC 6381 codecs value of an init segment's tracks (`avc1.64001f`, with
    `,mp4a.40.2` where it records sound), which the browser needs before it sees a byte
    (`MediaSource.addSourceBuffer`)."""
    found = [
        c for stsd in _stsds(init) for kind, entry in boxes(stsd[16:]) if (c := _codec(kind, entry))
    ]
    return ",".join(found) if found else "avc1.42e01e"


def _codec(kind: bytes, entry: bytes) -> str | None:
    """One sample entry's codecs value (stsd: a full box header and an entry count first)."""
    if kind in (b"avc1", b"avc3"):
        avcc = next((b for k, b in boxes(entry[86:]) if k == b"avcC"), None)
        if avcc is not None and len(avcc) >= 12:
            return f"{kind.decode()}.{avcc[9:12].hex()}"
    if kind in (b"hvc1", b"hev1"):
        return f"{kind.decode()}.1.6.L93.B0"  # Main: the browser reads the rest
    return AUDIO_CODECS.get(kind)


@dataclass(eq=False)  # each viewer is itself: two with the same fields are still two
class Viewer:
    """One client's view of one camera: a bounded buffer the relay fills and the client
    drains. `wake` is called (from the relay's thread) whenever there is something new."""

    camera: str
    limit: int = VIEWER_BUFFER
    wake: Callable[[], None] = lambda: None
    end: ViewerEnd | None = None
    _chunks: collections.deque[bytes] = field(default_factory=collections.deque)
    _size: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, data: bytes) -> bool:
        """Queue data; False (and the viewer dropped) when that would exceed its limit."""
        with self._lock:
            if self.end is not None:
                return False
            if self._size + len(data) > self.limit:
                self.end = ViewerEnd.TOO_SLOW
                self._chunks.clear()
                self._size = 0
            else:
                self._chunks.append(data)
                self._size += len(data)
        self.wake()
        return self.end is None

    def finish(self, why: ViewerEnd) -> None:
        with self._lock:
            if self.end is None:
                self.end = why
        self.wake()

    def take(self) -> bytes:
        """Everything queued, at once (b"" when nothing is)."""
        with self._lock:
            data, self._size = b"".join(self._chunks), 0
            self._chunks.clear()
            return data


@dataclass(frozen=True, slots=True)
class TrackRun:
    """One track's samples in a fragment: where its tfdt is, and the decode times they span."""

    track: int
    tfdt_at: int  # offset of the tfdt box in the moof
    start: int  # its base media decode time (track timescale)
    duration: int


def _box_at(data: bytes, at: int, end: int) -> tuple[bytes, int, int] | None:
    """(type, header size, box size) of the box at `at`, None when it does not fit before end."""
    if at + 8 > end:
        return None
    size, kind = struct.unpack_from(">I4s", data, at)
    header = 8
    if size == 1 and at + 16 <= end:
        size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
    if size < header or at + size > end:
        return None
    return kind, header, size


def _children(data: bytes, at: int, skip: int = 0) -> dict[bytes, list[int]]:
    """Offsets of the children of the box at `at`, by type (`skip`: bytes before them)."""
    found = _box_at(data, at, len(data))
    if found is None:
        raise ValueError("box cut short")
    _, header, size = found
    children: dict[bytes, list[int]] = {}
    child, end = at + header + skip, at + size
    while (box := _box_at(data, child, end)) is not None:
        children.setdefault(box[0], []).append(child)
        child += box[2]
    return children


def trex_durations(init: bytes) -> dict[int, int]:
    """Each track's default sample duration (moov/mvex/trex), for fragments that give none."""
    moov = next((at for at, (k, _) in _offsets(init) if k == b"moov"), None)
    if moov is None:
        return {}
    mvex = _children(init, moov).get(b"mvex", [])
    trexes = _children(init, mvex[0]).get(b"trex", []) if mvex else []
    return {
        struct.unpack_from(">I", init, at + 12)[0]: struct.unpack_from(">I", init, at + 20)[0]
        for at in trexes
        if at + 24 <= len(init)
    }


def _offsets(data: bytes) -> Iterator[tuple[int, tuple[bytes, int]]]:
    at = 0
    while (box := _box_at(data, at, len(data))) is not None:
        yield at, (box[0], box[2])
        at += box[2]


def track_runs(moof: bytes, defaults: dict[int, int]) -> list[TrackRun]:
    """Each track fragment's decode span: its tfdt, and the sum of its trun's sample durations
    (else the tfhd's default, else the track's trex default, times the sample count)."""
    runs = []
    for traf in _children(moof, 0).get(b"traf", []):
        kids = _children(moof, traf)
        if not all(k in kids for k in (b"tfhd", b"tfdt", b"trun")):
            raise ValueError("track fragment without tfhd, tfdt or trun")
        tfhd, tfdt, trun = kids[b"tfhd"][0], kids[b"tfdt"][0], kids[b"trun"][0]
        track = struct.unpack_from(">I", moof, tfhd + 12)[0]
        start = struct.unpack_from(">Q" if moof[tfdt + 8] == 1 else ">I", moof, tfdt + 12)[0]
        runs.append(
            TrackRun(track, tfdt, start, _duration(moof, tfhd, trun, defaults.get(track, 0)))
        )
    return runs


def _duration(moof: bytes, tfhd: int, trun: int, default: int) -> int:
    t_flags = struct.unpack_from(">I", moof, tfhd + 8)[0] & 0xFFFFFF
    if t_flags & 0x8:  # default-sample-duration-present
        at = tfhd + 16 + (8 if t_flags & 0x1 else 0) + (4 if t_flags & 0x2 else 0)
        default = struct.unpack_from(">I", moof, at)[0]
    r_flags = struct.unpack_from(">I", moof, trun + 8)[0] & 0xFFFFFF
    count = struct.unpack_from(">I", moof, trun + 12)[0]
    if not r_flags & 0x100:  # no sample-duration-present: each sample lasts the default
        return count * default
    first = trun + 16 + (4 if r_flags & 0x1 else 0) + (4 if r_flags & 0x4 else 0)
    stride = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if r_flags & bit)
    if first + count * stride > len(moof):
        raise ValueError("trun cut short")
    return sum(struct.unpack_from(">I", moof, first + i * stride)[0] for i in range(count))


def shift_decode_time(moof: bytes, runs: list[TrackRun], shifts: dict[int, int]) -> bytes:
    """The fragment with each track's tfdt moved by its shift (in the track's timescale)."""
    out = bytearray(moof)
    for run in runs:
        time = run.start + shifts.get(run.track, 0)
        if moof[run.tfdt_at + 8] == 1:
            struct.pack_into(">Q", out, run.tfdt_at + 12, time)
        elif 0 <= time < 1 << 32:
            struct.pack_into(">I", out, run.tfdt_at + 12, time)
        else:
            raise ValueError("a 32-bit tfdt cannot carry the stream's decode time on")
    return bytes(out)


def sample_entries(init: bytes) -> bytes:
    """What a next segment's init must repeat for the stream to go on in it: the codec setup
    of each track (its stsd)."""
    return b"".join(_stsds(init))


def _stsds(init: bytes) -> Iterator[bytes]:
    for moov in (at for at, (k, _) in _offsets(init) if k == b"moov"):
        for trak in _children(init, moov).get(b"trak", []):
            found = _find_at(init, trak, [b"mdia", b"minf", b"stbl", b"stsd"])
            if found is not None:
                yield init[found[0] : found[0] + found[1]]


def _find_at(data: bytes, at: int, path: list[bytes]) -> tuple[int, int] | None:
    for kind in path:
        kids = _children(data, at).get(kind)
        if not kids:
            return None
        at = kids[0]
    box = _box_at(data, at, len(data))
    return (at, box[2]) if box is not None else None


@dataclass(eq=False)
class CameraRun:
    """The segment files one recording run of a camera has opened so far (the newest few)."""

    directory: Path
    files: list[Path] = field(default_factory=list)
    ended: bool = False  # its ffmpeg exited: the last file is complete

    def after(self, path: Path) -> Path | None:
        """The file opened after `path` (the newest, when `path` is no longer known)."""
        if path in self.files:
            at = self.files.index(path)
            return self.files[at + 1] if at + 1 < len(self.files) else None
        return self.files[-1] if self.files else None


@dataclass(eq=False)
class LiveTail:
    """One camera's live stream: its run's segment files read as they grow, for its viewers."""

    camera: str
    run: CameraRun
    file: IO[bytes] | None = None
    path: Path | None = None
    pending: bytearray = field(default_factory=bytearray)
    init: bytes = b""  # ftyp + moov of the stream (its first file's)
    codec: str = ""
    entries: bytes = b""  # the stream's codec setup: a next file must repeat it
    durations: dict[int, int] = field(default_factory=dict)  # each track's trex default
    file_init: bytes = b""  # the current file's own ftyp + moov, while it is read
    shifts: dict[int, int] = field(default_factory=dict)  # the current file's decode time shifts
    next_decode: dict[int, int] = field(default_factory=dict)  # per track, after the last sample
    moof: bytes | None = None
    gop: list[bytes] = field(default_factory=list)  # fragments since the last keyframe
    gop_size: int = 0
    viewers: list[Viewer] = field(default_factory=list)
    waiting: list[Viewer] = field(default_factory=list)  # joined before any keyframe came
    fragments: int = 0

    def open(self, path: Path) -> None:
        """Read `path` from its start next (the file before it is done)."""
        self.close_file()
        self.file, self.path = open(path, "rb"), path  # noqa: SIM115 (kept open while read)
        self.pending.clear()
        self.file_init, self.moof, self.shifts = b"", None, {}

    def close_file(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def advance(self) -> bool:
        """Read what the recorder appended; on to the next file once this one is complete.
        False when the stream cannot go on (the run ended, or its setup changed)."""
        while self.file is not None:
            self.feed(self.file.read())
            following = self.run.after(self.path) if self.path is not None else None
            if following is None:  # the newest file: more comes, unless the run is over
                return not self.run.ended
            self.open(following)  # ffmpeg closed the file before it opened the next
        return False

    def feed(self, data: bytes) -> None:
        """Bytes of the current file: complete top-level boxes are taken, the rest waits."""
        self.pending += data
        while (box := _box_at(self.pending, 0, len(self.pending))) is not None:
            kind, _, size = box
            if size > MAX_BOX:
                raise ValueError(f"box {kind!r} of {size} bytes")
            whole = bytes(self.pending[:size])
            del self.pending[:size]
            self._box(kind, whole)
        if len(self.pending) >= 8 and struct.unpack_from(">I", self.pending)[0] > MAX_BOX:
            raise ValueError("a box larger than any live fragment")

    def _box(self, kind: bytes, box: bytes) -> None:
        if kind in (b"ftyp", b"moov"):
            self.file_init += box
            if kind == b"moov":
                self._setup(self.file_init)
        elif kind == b"moof":
            self.moof = box
        elif kind == b"mdat" and self.moof is not None:
            self._fragment(self._shifted(self.moof) + box, starts_with_keyframe(self.moof))
            self.moof = None

    def _setup(self, init: bytes) -> None:
        entries = sample_entries(init)
        if not self.init:
            self.init, self.entries, self.codec = init, entries, codec_string(init)
            self.durations = trex_durations(init)
        elif entries != self.entries:
            raise ValueError("the camera's stream changed its codec setup")

    def _shifted(self, moof: bytes) -> bytes:
        """The fragment on the stream's timeline: each file starts its decode times at 0, the
        stream runs on from where the last file ended."""
        runs = track_runs(moof, self.durations)
        for run in runs:
            if run.track not in self.shifts:
                self.shifts[run.track] = self.next_decode.get(run.track, run.start) - run.start
            self.next_decode[run.track] = run.start + self.shifts[run.track] + run.duration
        return shift_decode_time(moof, runs, self.shifts)

    def _fragment(self, fragment: bytes, keyframe: bool) -> None:
        self.fragments += 1
        if keyframe or self.gop_size + len(fragment) > GOP_LIMIT:
            self.gop, self.gop_size = [], 0
        if keyframe or self.gop:  # newcomers start at a keyframe
            self.gop.append(fragment)
            self.gop_size += len(fragment)
        self.viewers = [v for v in self.viewers if v.push(fragment)]
        if self.gop and self.waiting:
            waiting, self.waiting = self.waiting, []
            for viewer in waiting:
                self.join(viewer)

    def join(self, viewer: Viewer) -> bool:
        """Start a viewer at the init segment and the current keyframe, or at the next one
        when none came yet (False: the stream has no init segment)."""
        if not self.init:
            return False
        if not self.gop:
            self.waiting.append(viewer)
        elif viewer.push(self.init + b"".join(self.gop)):
            self.viewers.append(viewer)
        return True

    def watched(self) -> bool:
        return bool(self.viewers or self.waiting)

    def leave(self, viewer: Viewer) -> None:
        for viewers in (self.viewers, self.waiting):
            if viewer in viewers:
                viewers.remove(viewer)

    def close(self) -> None:
        self.close_file()
        for viewer in (*self.viewers, *self.waiting):
            viewer.finish(ViewerEnd.STREAM_ENDED)
        self.viewers, self.waiting = [], []


class LiveRelay:
    """Each recorder says which segment file it opened; a camera with viewers is read from it."""

    def __init__(self) -> None:
        self._runs: dict[str, CameraRun] = {}
        self._tails: dict[str, LiveTail] = {}
        self._lock = threading.Lock()  # guards _runs, _tails and each tail's viewers
        self._watched = threading.Event()  # set while some camera has a viewer
        self._closed = False  # no viewer joins any more (the daemon is stopping)
        self._stop = False
        self._thread = threads.Thread(target=self._run, name="live-relay", daemon=True)
        self._thread.start()

    def opened(self, camera: str, path: Path) -> None:
        """A recorder's ffmpeg opened a segment file (a new run when in a new directory)."""
        with self._lock:
            run = self._runs.get(camera)
            if run is None or run.directory != path.parent:
                if run is not None:
                    run.ended = True  # its viewers' stream ends after its last file
                run = self._runs[camera] = CameraRun(path.parent)
            run.files = [*run.files[1 - FILES_KEPT :], path]

    def ended(self, camera: str) -> None:
        """A recorder's run ended: its viewers' stream ends after its last file."""
        with self._lock:
            run = self._runs.pop(camera, None)
            if run is not None:
                run.ended = True

    def join(self, viewer: Viewer) -> bool:
        """Add a viewer to its camera's stream; False when the camera has no live picture."""
        with self._lock:
            if self._closed:
                return False
            tail = self._tails.get(viewer.camera) or self._start(viewer.camera)
            if tail is None or not tail.join(viewer):
                return False
            self._watched.set()
            return True

    def codec(self, camera: str) -> str | None:
        """The RFC 6381 codecs of the camera's live stream, None when it has no picture."""
        with self._lock:
            tail = self._tails.get(camera)
            if tail is not None:
                return tail.codec or None
            run = self._runs.get(camera)
            if run is None or not run.files:
                return None
            try:
                with open(run.files[-1], "rb") as f:
                    init = f.read(INIT_BYTES)
            except OSError:
                return None
            return codec_string(init) if any(k == b"moov" for k, _ in boxes(init)) else None

    def leave(self, viewer: Viewer) -> None:
        viewer.finish(ViewerEnd.LEFT)
        with self._lock:
            tail = self._tails.get(viewer.camera)
            if tail is not None:
                tail.leave(viewer)
                if not tail.watched():
                    self._forget(tail)

    def viewers(self) -> int:
        with self._lock:
            return sum(len(t.viewers) + len(t.waiting) for t in self._tails.values())

    def close(self) -> None:
        """End every viewer's stream and take no new one (the daemon is stopping: the HTTP
        server waits for open responses)."""
        with self._lock:
            self._closed = True
            for tail in list(self._tails.values()):
                self._forget(tail)

    def stop(self) -> None:
        self._stop = True
        self._watched.set()
        self._thread.join(5)

    def _start(self, camera: str) -> LiveTail | None:
        """A tail of the file the camera's recorder is writing, read up to now."""
        run = self._runs.get(camera)
        if run is None or not run.files:
            return None
        tail = LiveTail(camera, run)
        if not self._advance(tail, run.files[-1]) or not tail.init:
            tail.close()
            return None
        self._tails[camera] = tail
        return tail

    def _advance(self, tail: LiveTail, path: Path | None = None) -> bool:
        """Read on in the tail; False (the tail unusable) when its file is gone or unreadable."""
        try:
            if path is not None:
                tail.open(path)
            return tail.advance()
        except OSError as exc:  # ingest moved a file the tail had not opened yet
            log.info("live.file_gone", camera=tail.camera, error=str(exc))
        except ValueError as exc:  # not what ffmpeg was asked for, or the setup changed
            log.warning("live.stream_ended", camera=tail.camera, reason=str(exc))
        return False

    def _run(self) -> None:
        while not self._stop:
            self._watched.wait()
            time.sleep(POLL_S)
            with self._lock:
                for tail in list(self._tails.values()):
                    if not self._advance(tail) or not tail.watched():  # ended, or all dropped
                        self._forget(tail)
                if not self._tails:
                    self._watched.clear()

    def _forget(self, tail: LiveTail) -> None:
        tail.close()
        if self._tails.get(tail.camera) is tail:
            del self._tails[tail.camera]
