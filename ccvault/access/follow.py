"""Following the event log an access system writes (CSV with a header, or JSON lines).

Where it was read to — the file's device and inode, the byte after the last complete line, the
line number — is kept in the catalog after each chunk's events are stored, so a restart goes on
from there: no event lost, none read twice (and a line read again after a crash is a duplicate
by its event id anyway). Rotation: when the path names another file, the old one (found again
by its inode, also after a restart) is read to its end first, then the new one from its start;
a file that shrank (copy-and-truncate rotation) is read again from its start. Only complete
lines are read: a line still being written waits for its newline. File events (watchdog) only
wake the check early; a periodic check is the truth, as for the spool.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ccvault.access.log import AccessLog
from ccvault.catalog import queries
from ccvault.catalog.rows import FilePosition
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.access import EVENT_FIELDS, AccessFileConfig
from ccvault.host import threads
from ccvault.host.clock import Clock

log = structlog.get_logger("ccvault.access")

SOURCE = "file"
CHECK_S = 2.0
CHUNK_LINES = 1000


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based, in its file
    end: int  # the byte after its newline
    text: str


class FileFollower:
    def __init__(
        self, cfg: AccessFileConfig, access: AccessLog, writer: CatalogWriter, clock: Clock
    ) -> None:
        self.cfg, self.access, self.writer, self.clock = cfg, access, writer, clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threads.Thread(target=self._run, name="access-file", daemon=True)
        self._observer: Any = None

    def start(self) -> None:
        self._watch()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()

    def check(self) -> int:
        """Read what was appended (and what a rotation left unread); the lines read."""
        with self.writer.reader() as conn:
            pos = queries.source_position(conn, SOURCE)
        try:
            st = os.stat(self.cfg.path)
        except FileNotFoundError:
            return 0  # not written yet (or mid-rotation): the next check sees it
        read = 0
        if pos is not None and (pos.device, pos.inode) != (st.st_dev, st.st_ino):
            read += self._finish_rotated(pos)
            pos = None
        if pos is not None and st.st_size < pos.offset:
            log.warning("access.file_truncated", path=str(self.cfg.path), offset=pos.offset)
            pos = None
        start = pos or FilePosition(st.st_dev, st.st_ino, 0, 0)
        return read + self._read(self.cfg.path, start)

    def _finish_rotated(self, pos: FilePosition) -> int:
        old = _by_inode(self.cfg.path.parent, pos)
        if old is None:
            log.warning(
                "access.file_rotated_away", path=str(self.cfg.path), unread_after_line=pos.line
            )
            return 0
        return self._read(old, pos)

    def _read(self, path: Path, pos: FilePosition) -> int:
        try:
            with open(path, "rb") as f:
                if (os.fstat(f.fileno()).st_dev, os.fstat(f.fileno()).st_ino) != (
                    pos.device,
                    pos.inode,
                ):
                    return 0  # replaced since the stat: the next check reads the new one
                header = _header(f) if self.cfg.format == "csv" else None
                total = 0
                for chunk in _chunks(f, pos, skip_header=header is not None):
                    self._record(chunk, header)
                    pos = FilePosition(pos.device, pos.inode, chunk[-1].end, chunk[-1].number)
                    self.writer.access.set_position(SOURCE, pos, self.clock.wall_ms())
                    total += len(chunk)
                return total
        except FileNotFoundError:
            return 0

    def _record(self, lines: list[Line], header: list[str] | None) -> None:
        events = [self._event(line, header) for line in lines]
        result = self.access.record(events, SOURCE, first_index=0)
        for rejection in result.rejected:  # the index is the position in this chunk
            log.warning(
                "access.file_line_rejected",
                path=str(self.cfg.path),
                line=lines[rejection.index].number,
                reason=rejection.reason,
            )

    def _event(self, line: Line, header: list[str] | None) -> Any:
        """The line as an event object, its columns renamed to event fields."""
        if header is None:
            try:
                raw: Any = json.loads(line.text)
            except ValueError:
                return f"line {line.number}: not JSON"
        else:
            values = next(csv.reader([line.text]), [])
            raw = dict(zip(header, values, strict=False))
        if not isinstance(raw, dict):
            return raw
        names = {field: self.cfg.columns.get(field, field) for field in EVENT_FIELDS}
        event = {field: raw[column] for field, column in names.items() if column in raw}
        time = event.get("time")
        if isinstance(time, str) and time.strip().isdigit():
            event["time"] = int(time)  # UTC milliseconds, as the API takes them
        return event

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # a bad file must not end the follower
                log.exception("access.file_check_failed", path=str(self.cfg.path))
            self._wake.wait(CHECK_S)
            self._wake.clear()

    def _watch(self) -> None:
        handler = _Changed(self.cfg.path.name, self._wake.set)
        observer = Observer()
        directory = self.cfg.path.parent
        if not directory.is_dir():
            return
        observer.schedule(handler, str(directory), recursive=False)
        observer.daemon = True
        try:
            observer.start()
        except OSError as exc:  # inotify limits: the periodic check still reads everything
            log.warning("access.file_watch_failed", error=str(exc))
            return
        self._observer = observer


class _Changed(FileSystemEventHandler):
    def __init__(self, name: str, wake: Any) -> None:
        self._name, self._wake = name, wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if Path(str(event.src_path)).name == self._name or event.event_type == "moved":
            self._wake()


def _header(f: io.BufferedReader) -> list[str] | None:
    """A CSV file's first line (the column names), wherever reading continues."""
    here = f.tell()
    f.seek(0)
    first = f.readline()
    f.seek(here)
    if not first.endswith(b"\n"):
        return None
    return next(csv.reader([first.decode("utf-8", "replace").strip()]), [])


def _chunks(f: io.BufferedReader, pos: FilePosition, skip_header: bool) -> Iterator[list[Line]]:
    """Complete lines after `pos`, in chunks; a CSV file's first line (its header) is not an
    event."""
    f.seek(pos.offset)
    number, offset, chunk = pos.line, pos.offset, []
    for raw in f:
        if not raw.endswith(b"\n"):
            break  # still being written
        number += 1
        offset += len(raw)
        text = raw.decode("utf-8", "replace").strip()
        if text and not (skip_header and number == 1):
            chunk.append(Line(number, offset, text))
        if len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _by_inode(directory: Path, pos: FilePosition) -> Path | None:
    """The rotated file: the one in the directory with the inode that was being read."""
    try:
        for entry in os.scandir(directory):
            st = entry.stat(follow_symlinks=False)
            if (st.st_dev, st.st_ino) == (pos.device, pos.inode):
                return Path(entry.path)
    except OSError:
        return None
    return None
