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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog

from ccvault.host import threads
from ccvault.storage import mp4

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


class ViewerEnd(enum.Enum):
    """Why a viewer's stream ended."""

    STREAM_ENDED = "stream_ended"  # the recorder's run ended (restart, camera lost, stop)
    TOO_SLOW = "too_slow"  # its buffer overflowed: it was dropped
    LEFT = "left"  # the client went away


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
        c
        for stsd in sample_descriptions(init)
        for kind, entry in mp4.boxes(stsd[16:])  # a full box header and an entry count first
        if (c := _codec(kind, entry))
    ]
    return ",".join(found) if found else "avc1.42e01e"


def sample_descriptions(init: bytes) -> list[bytes]:
    """Each track's codec setup (its stsd): what a next segment's init must repeat for the
    stream to go on in it."""
    moov = _moov(init)
    if moov is None:
        return []
    return [d for t in mp4.traks(moov) if (d := mp4.sample_description(moov, t)) is not None]


def _moov(init: bytes) -> bytes | None:
    return next((box for kind, box in mp4.boxes(init) if kind == b"moov"), None)


def shift_decode_time(
    moof: bytes, fragments: list[mp4.TrackFragment], shifts: dict[int, int]
) -> bytes:
    """The moof with each track's tfdt moved by its shift (in the track's timescale)."""
    out = bytearray(moof)
    for fragment in fragments:
        time = fragment.start + shifts.get(fragment.track_id, 0)
        if moof[fragment.tfdt_at + 8] == 1:
            struct.pack_into(">Q", out, fragment.tfdt_at + 12, time)
        elif 0 <= time < 1 << 32:
            struct.pack_into(">I", out, fragment.tfdt_at + 12, time)
        else:
            raise ValueError("a 32-bit tfdt cannot carry the stream's decode time on")
    return bytes(out)


def _codec(kind: bytes, entry: bytes) -> str | None:
    """One sample entry's codecs value (stsd: a full box header and an entry count first)."""
    if kind in (b"avc1", b"avc3"):
        avcc = next((b for k, b in mp4.boxes(entry[86:]) if k == b"avcC"), None)
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
    defaults: dict[int, mp4.TrackDefaults] = field(default_factory=dict)  # moov's trex
    file_init: bytes = b""  # the current file's own ftyp + moov, while it is read
    shifts: dict[int, int] = field(default_factory=dict)  # the current file's decode time shifts
    next_decode: dict[int, int] = field(default_factory=dict)  # per track, after the last sample
    moof: bytes | None = None
    gop: list[bytes] = field(default_factory=list)  # fragments since the last keyframe
    gop_size: int = 0
    viewers: list[Viewer] = field(default_factory=list)
    waiting: list[Viewer] = field(default_factory=list)  # joined before any keyframe came

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
        while (box := mp4.box_at(self.pending, 0, len(self.pending))) is not None:
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
            fragments = mp4.track_fragments(self.moof, self.defaults)
            first = fragments[0].flags[:1] if fragments else ()
            keyframe = bool(first) and not first[0] & mp4.NON_SYNC  # a decoder can start here
            self._fragment(self._shifted(self.moof, fragments) + box, keyframe)
            self.moof = None

    def _setup(self, init: bytes) -> None:
        entries = b"".join(sample_descriptions(init))
        if not self.init:
            self.init, self.entries, self.codec = init, entries, codec_string(init)
            moov = _moov(init)
            self.defaults = mp4.trex_defaults(moov) if moov is not None else {}
        elif entries != self.entries:
            raise ValueError("the camera's stream changed its codec setup")

    def _shifted(self, moof: bytes, fragments: list[mp4.TrackFragment]) -> bytes:
        """The moof on the stream's timeline: each file starts its decode times at 0, the
        stream runs on from where the last file ended."""
        for f in fragments:
            if f.track_id not in self.shifts:
                self.shifts[f.track_id] = self.next_decode.get(f.track_id, f.start) - f.start
            self.next_decode[f.track_id] = f.start + self.shifts[f.track_id] + f.duration
        return shift_decode_time(moof, fragments, self.shifts)

    def _fragment(self, fragment: bytes, keyframe: bool) -> None:
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
            return codec_string(init) if _moov(init) is not None else None

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
        except (ValueError, struct.error) as exc:  # not what ffmpeg writes, or a new setup
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
