"""Every recorder's ffmpeg output, read by one thread.

Each ffmpeg writes its log (stderr: the segment files it opens, errors), and a feeder's too.
A blocking reader thread per pipe — 64 and more threads, each woken per line — costs the
daemon more CPU than the lines are worth; one thread waits on all the pipes at once (epoll),
reads what each has in one call and hands complete lines to the stream's handler. A handler
that raises is logged and the stream read on: one camera's surprise must not silence the
others.
"""

from __future__ import annotations

import os
import selectors
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

import structlog

from ccvault.host import threads

log = structlog.get_logger("ccvault.recorder")

READ_BYTES = 1 << 16
LineHandler = Callable[[str], None]


@dataclass
class _Stream:
    stream: IO[bytes]
    handle: LineHandler
    partial: bytes = field(default=b"")


class OutputPump:
    """Reads the registered streams until each ends (then closes it), one thread for all."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._pending: list[_Stream] = []
        self._thread: threading.Thread | None = None

    def add(self, stream: IO[bytes] | None, handle: LineHandler) -> None:
        """Hand each line of stream (decoded, trailing whitespace stripped) to handle, from
        the pump's thread, until the stream ends."""
        assert stream is not None
        os.set_blocking(stream.fileno(), False)
        with self._lock:
            self._pending.append(_Stream(stream, handle))
            if self._thread is None:
                self._thread = threads.Thread(target=self._run, name="ffmpeg-output", daemon=True)
                self._thread.start()
        os.write(self._wake_w, b"+")

    def streams(self) -> int:
        """Streams being read (the wake-up pipe not counted)."""
        return len(self._selector.get_map()) - 1

    def _run(self) -> None:
        while True:
            for key, _events in self._selector.select():
                if key.data is None:
                    self._take_pending()
                else:
                    self._read(key.data)

    def _take_pending(self) -> None:
        try:
            while os.read(self._wake_r, READ_BYTES):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            pending, self._pending = self._pending, []
        for entry in pending:
            self._selector.register(entry.stream, selectors.EVENT_READ, entry)

    def _read(self, entry: _Stream) -> None:
        try:
            data = os.read(entry.stream.fileno(), READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the process closed its end: the last line, then forget the stream
            self._selector.unregister(entry.stream)
            entry.stream.close()
            if entry.partial:
                self._deliver(entry, entry.partial)
            return
        *lines, entry.partial = (entry.partial + data).split(b"\n")
        if len(entry.partial) > READ_BYTES:  # no line is that long: take it as one
            lines.append(entry.partial)
            entry.partial = b""
        for raw in lines:
            self._deliver(entry, raw)

    @staticmethod
    def _deliver(entry: _Stream, raw: bytes) -> None:
        try:
            entry.handle(raw.decode("utf-8", "replace").rstrip())
        except Exception:
            log.exception("recorder.output_handler_failed")
