"""A live-view client for tests and bench/live.py: reads a camera's live stream, noting when
each box arrives, and tells how long each frame took to get there from the camera — measured
against a second, direct RTSP client of the same shared stream (on loopback it receives each
frame as the server sends it), by finding each frame's own bytes (its slice NAL units,
identical under stream copy) in the fragments."""

from __future__ import annotations

import collections
import hashlib
import re
import struct
import threading
import time
from dataclasses import dataclass, field

import av
import httpx

START_CODE = re.compile(b"\x00\x00\x01")
SLICES = (1, 5)  # H.264 NAL unit types of coded pictures (non-IDR, IDR)


def top_boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, box) of each complete top-level ISO BMFF box (what a test reads independently)."""
    out, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        if size < 8 or at + size > len(data):
            break
        out.append((kind, data[at : at + size]))
        at += size
    return out


@dataclass
class Received:
    """A live response read in a thread: the bytes, and when each complete box arrived."""

    status: int = 0
    content_type: str = ""
    data: bytearray = field(default_factory=bytearray)
    arrivals: list[tuple[float, bytes, bytes]] = field(default_factory=list)  # (t, type, box)
    ended: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def read(self, url: str, headers: dict[str, str]) -> None:
        parsed = 0
        with httpx.stream("GET", url, headers=headers, timeout=30) as resp:
            self.status, self.content_type = resp.status_code, resp.headers["content-type"]
            for chunk in resp.iter_raw():
                now = time.time()
                self.data += chunk
                for kind, box in top_boxes(bytes(self.data[parsed:])):
                    self.arrivals.append((now, kind, box))
                    parsed += len(box)
                if self.stop.is_set() or resp.status_code != 200:
                    return
        self.ended = True


def slice_nals(packet: bytes) -> list[bytes]:
    """The coded-picture NAL units of an Annex B access unit (what RTSP depacketizes to)."""
    nals = [n.rstrip(b"\x00") for n in START_CODE.split(packet)]
    return [n for n in nals if len(n) > 16 and n[0] & 0x1F in SLICES]


def direct_arrivals(url: str, stop: threading.Event, out: list[tuple[float, bytes]]) -> None:
    """Frames of the camera as a direct RTSP client receives them: (arrival, slice NAL)."""
    options = {"rtsp_transport": "tcp", "fflags": "nobuffer", "analyzeduration": "0"}
    with av.open(url, options=options, timeout=10) as container:
        for packet in container.demux(container.streams.video[0]):
            now = time.time()
            out.extend((now, nal) for nal in slice_nals(bytes(packet)))
            if stop.is_set():
                return


def mdat_nals(mdat: bytes) -> list[bytes]:
    """The NAL units of a fragment's mdat (MP4 samples: 4-byte length, NAL unit, ...)."""
    nals, at = [], 8
    while at + 4 <= len(mdat):
        size = struct.unpack_from(">I", mdat, at)[0]
        nals.append(mdat[at + 4 : at + 4 + size])
        at += 4 + size
    return nals


def latencies(direct: list[tuple[float, bytes]], received: Received) -> list[float]:
    """For each frame found in a live fragment: its arrival there less its direct arrival.
    Only frames whose bytes occur once on each side count (a test pattern repeats itself)."""
    live: dict[bytes, list[float]] = collections.defaultdict(list)
    for arrival, kind, box in received.arrivals:
        if kind == b"mdat":
            for nal in mdat_nals(box):
                live[hashlib.sha1(nal).digest()].append(arrival)
    sent = collections.defaultdict(list)
    for at, nal in direct:
        sent[hashlib.sha1(nal).digest()].append(at)
    return [
        live[key][0] - times[0]
        for key, times in sent.items()
        if len(times) == 1 and len(live.get(key, ())) == 1
    ]
