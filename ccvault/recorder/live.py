"""Live view: each recorder's own stream copy as fragmented MP4, fanned out to viewers.

The recording ffmpeg has a second output, the same video packets (no transcoding) as
fragmented MP4 on a pipe (`ffmpeg.live_output_args`). One thread here (`LiveRelay`) reads every
camera's pipe with a selector, splits it into top-level boxes — the init segment (ftyp +
moov), then fragments (moof + mdat) — and hands each fragment to every viewer of that camera.

Recording never waits for a viewer: the relay only copies bytes into each viewer's bounded
buffer (`Viewer.push`) and never blocks; a viewer whose buffer is full (a slow or stalled
client) is dropped, not waited for. The pipe itself is drained whether or not anyone watches.
A newcomer gets the init segment and the fragments since the last keyframe, so its picture
starts at once. One camera connection serves every viewer: viewers never reach the camera.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import os
import selectors
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger("ccvault.live")

READ_CHUNK = 256 * 1024
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


def codec_string(init: bytes) -> str:
    """The RFC 6381 codecs value of an init segment's video track (`avc1.64001f`), which the
    browser needs before it sees a byte (`MediaSource.addSourceBuffer`)."""
    found = _find(init, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    if found is not None:
        for kind, entry in boxes(found[16:]):  # stsd: full box header + entry count
            if kind in (b"avc1", b"avc3"):
                avcc = next((b for k, b in boxes(entry[86:]) if k == b"avcC"), None)
                if avcc is not None and len(avcc) >= 12:
                    return f"{kind.decode()}.{avcc[9:12].hex()}"
            if kind in (b"hvc1", b"hev1"):
                return f"{kind.decode()}.1.6.L93.B0"  # Main: the browser reads the rest
    return "avc1.42e01e"


def _find(data: bytes, path: list[bytes]) -> bytes | None:
    box: bytes | None = next((b for k, b in boxes(data) if k == path[0]), None)
    for kind in path[1:]:
        if box is None:
            return None
        box = _child(box, kind)
    return box


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
class LiveStream:
    """One recording run's live stream of one camera."""

    camera: str
    fd: int
    pending: bytearray = field(default_factory=bytearray)
    init: bytes = b""  # ftyp + moov
    codec: str = ""
    gop: list[bytes] = field(default_factory=list)  # fragments since the last keyframe
    gop_size: int = 0
    moof: bytes | None = None
    viewers: list[Viewer] = field(default_factory=list)
    fragments: int = 0
    broken: bool = False  # not the stream asked for: drained and dropped, never parsed again

    def feed(self, data: bytes) -> None:
        """Bytes from the pipe: complete top-level boxes are taken, the rest waits."""
        self.pending += data
        while len(self.pending) >= 8:
            size, kind = struct.unpack_from(">I4s", self.pending)
            if size == 1 and len(self.pending) >= 16:
                size = struct.unpack_from(">Q", self.pending, 8)[0]
            elif size == 1:
                return
            if size < 8 or size > MAX_BOX:
                raise ValueError(f"box {kind!r} of {size} bytes")
            if len(self.pending) < size:
                return
            box = bytes(self.pending[:size])
            del self.pending[:size]
            self._box(kind, box)

    def _box(self, kind: bytes, box: bytes) -> None:
        if kind == b"moof":
            self.moof = box
        elif kind == b"mdat" and self.moof is not None:
            self._fragment(self.moof + box, starts_with_keyframe(self.moof))
            self.moof = None
        elif not self.fragments and kind in (b"ftyp", b"moov"):
            self.init += box
            if kind == b"moov":
                self.codec = codec_string(self.init)

    def _fragment(self, fragment: bytes, keyframe: bool) -> None:
        self.fragments += 1
        if keyframe or self.gop_size + len(fragment) > GOP_LIMIT:
            self.gop, self.gop_size = [], 0
        if keyframe or self.gop:  # newcomers start at a keyframe
            self.gop.append(fragment)
            self.gop_size += len(fragment)
        self.viewers = [v for v in self.viewers if v.push(fragment)]

    def join(self, viewer: Viewer) -> bool:
        """Start a viewer at the init segment and the current keyframe (False: none yet)."""
        if not self.init or not self.gop:
            return False
        if viewer.push(self.init + b"".join(self.gop)):
            self.viewers.append(viewer)
        return True

    def close(self) -> None:
        for viewer in self.viewers:
            viewer.finish(ViewerEnd.STREAM_ENDED)
        self.viewers = []


class LiveRelay:
    """Every camera's live pipe, read by one thread; viewers join a camera's current stream."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._streams: dict[str, LiveStream] = {}
        self._lock = threading.Lock()  # guards _streams and each stream's viewers
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._added: list[LiveStream] = []
        self._closed = False  # no viewer joins any more (the daemon is stopping)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="live-relay", daemon=True)
        self._thread.start()

    def attach(self, camera: str, fd: int) -> None:
        """A recorder's new run: read its live pipe from now on (the relay owns fd)."""
        os.set_blocking(fd, False)
        with self._lock:
            self._added.append(LiveStream(camera, fd))
        self._poke()

    def join(self, viewer: Viewer) -> bool:
        """Add a viewer to its camera's stream; False when the camera has no live picture."""
        with self._lock:
            stream = self._streams.get(viewer.camera)
            return not self._closed and stream is not None and stream.join(viewer)

    def codec(self, camera: str) -> str | None:
        with self._lock:
            stream = self._streams.get(camera)
            return stream.codec if stream is not None and stream.gop else None

    def leave(self, viewer: Viewer) -> None:
        viewer.finish(ViewerEnd.LEFT)
        with self._lock:
            stream = self._streams.get(viewer.camera)
            if stream is not None and viewer in stream.viewers:
                stream.viewers.remove(viewer)

    def viewers(self) -> int:
        with self._lock:
            return sum(len(s.viewers) for s in self._streams.values())

    def close(self) -> None:
        """End every viewer's stream and take no new one (the daemon is stopping: the HTTP
        server waits for open responses)."""
        with self._lock:
            self._closed = True
            for stream in self._streams.values():
                stream.close()

    def stop(self) -> None:
        """End the thread once the recorders have exited (their pipes are drained to the
        end; a read end closed under a running ffmpeg would be its broken pipe)."""
        self._stop = True
        self._poke()
        self._thread.join(5)

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select():
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    self._take_added()
                else:
                    self._read(key.data)
        with self._lock:  # the recorders have stopped: their pipes are at their end
            for key in list(self._selector.get_map().values()):
                if key.data is not None:
                    self._end(key.data)

    def _take_added(self) -> None:
        with self._lock:
            added, self._added = self._added, []
            for stream in added:
                old = self._streams.get(stream.camera)
                if old is not None:  # a new run replaces the old one's viewers (its pipe is
                    self._forget(old)  # read to its end still)
                self._streams[stream.camera] = stream
                self._selector.register(stream.fd, selectors.EVENT_READ, stream)

    def _read(self, stream: LiveStream) -> None:
        try:
            data = os.read(stream.fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("live.read_failed", camera=stream.camera, error=str(exc))
            data = b""
        with self._lock:
            if not data:
                self._end(stream)
            elif not stream.broken:
                try:
                    stream.feed(data)
                except ValueError as exc:  # not what ffmpeg was asked for: viewers go,
                    log.error("live.bad_stream", camera=stream.camera, error=str(exc))
                    stream.broken = True  # the pipe is still drained (a closed read end
                    self._forget(stream)  # would end the recording: a broken pipe)

    def _end(self, stream: LiveStream) -> None:
        """The run's pipe ended (ffmpeg exited): its viewers' streams end, the fd is closed."""
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(stream.fd)
        os.close(stream.fd)
        self._forget(stream)

    def _forget(self, stream: LiveStream) -> None:
        stream.close()
        if self._streams.get(stream.camera) is stream:
            del self._streams[stream.camera]
