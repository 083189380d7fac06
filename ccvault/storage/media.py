"""Probing and hashing segment files: the facts ingest needs before a file may be catalogued.

Probing reads a file laid out as the recorders write it (fragmented MP4, one video track) from
its boxes (`mp4`); any other file PyAV demuxes, packets only (no decoding). A file that cannot
be demuxed, or holds no video keyframe, is not footage we can stand behind.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ccvault.catalog.rows import MediaInfo
from ccvault.errors import reason
from ccvault.storage import mp4

HASH_CHUNK = 1 << 20
# What ccvault stores: segments must be cut at keyframes and played back by stream copy.
SUPPORTED_CODECS = {"h264", "hevc"}
# MP4 headers already hold codec, size and timing. Without these options opening a file
# decodes frames (on a pool of threads) to guess them: 20-50 ms per segment instead of
# 0.5 ms, most of ingest's CPU (bench/ingest.py). Size still comes from the parameter sets.
PROBE_OPTIONS = {"probesize": "32", "analyzeduration": "0", "threads": "1", "skip_frame": "all"}


class ProbeError(Exception):
    """The file is not usable footage; the message says why (it goes to the quarantine log)."""


def probe(path: Path) -> MediaInfo:
    """The facts of a segment file, or `ProbeError` saying why it is not footage."""
    return recorded_facts(path) or demuxed_facts(path)


# Box types a recorded segment holds besides moov and moof (mfra: ffmpeg's index at the end).
SKIPPED_BOXES = {b"ftyp", b"styp", b"mdat", b"mfra", b"free", b"skip", b"sidx"}
SAMPLE_ENTRY_CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}


def recorded_facts(path: Path) -> MediaInfo | None:
    """The facts of a fragmented MP4 as the recorders write it, read from its moov and moofs:
    0.8 ms a 10 s 1080p segment where PyAV's open and demux cost 2.1 ms (most of ingest's CPU
    after hashing). None when the file is laid out otherwise — not fragmented, cut short (a
    killed recorder's), an edit list, another codec, no keyframe — and PyAV, the reference,
    then says what it is (`demuxed_facts`; tests/test_probe.py holds the two equal)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _facts(fd, os.fstat(fd).st_size)
    except (ValueError, struct.error, IndexError, OSError):
        return None
    finally:
        os.close(fd)


def _facts(fd: int, size: int) -> MediaInfo | None:
    video: mp4.Track | None = None
    defaults: dict[int, mp4.TrackDefaults] = {}
    samples = _Samples()
    for kind, pos, box_size in mp4.top_level(fd, size):  # ValueError: cut short (None)
        if kind == b"moov":
            moov = os.pread(fd, box_size, pos)
            video = _video_track(moov)
            defaults = mp4.trex_defaults(moov)
        elif kind == b"moof" and video is not None:
            for fragment in mp4.track_fragments(os.pread(fd, box_size, pos), defaults):
                if fragment.track_id == video.track_id:
                    samples.add(fragment)
        elif kind not in SKIPPED_BOXES:
            return None
    return samples.facts(video) if video is not None else None


def _video_track(moov: bytes) -> mp4.Track | None:
    videos = [t for t in mp4.tracks(moov) if t.handler == b"vide"]
    if len(videos) != 1 or videos[0].edited or videos[0].entry not in SAMPLE_ENTRY_CODECS:
        return None
    return videos[0]


@dataclass
class _Samples:
    """What a video track's samples add up to, counted as PyAV's packets are."""

    frames: int = 0
    keyframes: int = 0
    first: int | None = None  # earliest presentation time
    last_end: int | None = None  # latest presentation time + duration

    def add(self, fragment: mp4.TrackFragment) -> None:
        dts = fragment.start
        for duration, size, flags, offset in zip(
            fragment.durations, fragment.sizes, fragment.flags, fragment.offsets, strict=True
        ):
            if size:  # PyAV skips empty packets too
                pts = dts + offset
                self.frames += 1
                self.keyframes += not flags & mp4.NON_SYNC
                self.first = pts if self.first is None else min(self.first, pts)
                end = pts + duration
                self.last_end = end if self.last_end is None else max(self.last_end, end)
            dts += duration

    def facts(self, video: mp4.Track) -> MediaInfo | None:
        if not self.keyframes or self.first is None or self.last_end is None:
            return None
        if self.last_end == self.first or not video.timescale:
            return None  # PyAV estimates a lone frame's duration from the frame rate
        return MediaInfo(
            duration_ms=max(
                1, round(float(Fraction(self.last_end - self.first, video.timescale)) * 1000)
            ),
            codec=SAMPLE_ENTRY_CODECS[video.entry],
            width=video.width,
            height=video.height,
            frames=self.frames,
            keyframes=self.keyframes,
        )


def demuxed_facts(path: Path) -> MediaInfo:
    """The facts as PyAV demuxes them (packets, no decoding): any file libavformat reads."""
    try:
        with av.open(str(path), metadata_errors="ignore", options=PROBE_OPTIONS) as container:
            if not container.streams.video:
                raise ProbeError("no video stream")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in SUPPORTED_CODECS:
                raise ProbeError(f"unsupported video codec {codec} (ccvault stores H.264, H.265)")
            frames = keyframes = 0
            first = last_end = None
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                frames += 1
                keyframes += bool(packet.is_keyframe)
                start = packet.pts
                end = packet.pts + (packet.duration or 0)
                first = start if first is None else min(first, start)
                last_end = end if last_end is None else max(last_end, end)
            if frames == 0 or first is None or last_end is None:
                raise ProbeError("no video frames")
            if keyframes == 0:
                raise ProbeError("no keyframe")
            base = stream.time_base
            rate = stream.average_rate or stream.guessed_rate
            if last_end == first and rate:
                last_end = first + int(1 / (rate * base))
            ctx = stream.codec_context
            return MediaInfo(
                duration_ms=max(1, round(float((last_end - first) * base) * 1000)),
                codec=codec,
                width=ctx.width,
                height=ctx.height,
                frames=frames,
                keyframes=keyframes,
            )
    except ProbeError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise ProbeError(f"unreadable: {reason(exc)}") from None


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read into one 1 MiB buffer hashed in place.

    On a 3.8 MB segment in the page cache this costs 1.15x hashing the same bytes already in
    memory, in time and in CPU. Reading the next chunk while a worker thread hashed the last
    one, as ingest did before, cost 1.75x in CPU and was slower in time too (3.7 vs 2.4 ms):
    the hand-offs cost more than the overlap gave. An mmap saves 0.1 ms more but dies of
    SIGBUS if the file is cut short while read."""
    digest = hashlib.sha256()
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def copy_hashed(src: Path, dst: Path) -> str:
    """Copy src to a new file dst (never replacing one), fsync it, and return the SHA-256 of
    the bytes written — re-read from dst, so the hash proves what landed on the target disk."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb", closefd=False) as fout:
            buf = bytearray(HASH_CHUNK)
            view = memoryview(buf)
            while n := fin.readinto(buf):
                fout.write(view[:n])
            fout.flush()
            os.fsync(fd)
    finally:
        os.close(fd)
    return sha256_file(dst)
