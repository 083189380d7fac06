"""The append-only, hash-chained audit log: who changed or deleted what, as JSON lines.

Each record carries the previous record's hash, so editing, inserting or deleting a line breaks
the chain at that line (`AuditLog.verify`). The catalog writer's transaction serialises appends
across processes; this module assumes it and takes no lock of its own. Footage retention never
touches this file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccvault.errors import CcvaultError
from ccvault.host.durable import fsync_dir, make_dirs, open_private
from ccvault.timefmt import utc_text

GENESIS = "0" * 64
KEYS = ("seq", "time", "actor", "action", "object", "details", "prev", "hash")
_CHUNK = 8192


@dataclass(frozen=True)
class AuditCheck:
    ok: bool
    records: int
    bad_line: int | None
    problem: str


@dataclass(frozen=True)
class AuditCursor:
    """How far a verification got: the next byte, and the chain's state there."""

    offset: int = 0
    line: int = 0
    seq: int = 0
    prev: str = GENESIS
    records: int = 0
    last_start: int = 0  # where the last verified record's line starts


def record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(
        self, *, actor: str, action: str, obj: str, details: dict[str, Any], now_ms: int
    ) -> dict[str, Any]:
        """Append one record and fsync it; the caller holds the catalog writer's transaction.

        Bytes after the last newline are an append that a crash cut short. That append ran
        inside a catalog transaction which never committed, so it records nothing that
        happened; it is truncated, and an `audit.repaired` record saying how many bytes were
        dropped goes first, so the chain continues and the cut stays visible.
        """
        json.dumps(details)  # not serialisable: fail before touching the file
        created = not self.path.exists()
        if created:
            make_dirs(self.path.parent)
        fd = open_private(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            seq, prev, keep, size = self._head(fd)
            lines = []
            if keep < size:
                os.ftruncate(fd, keep)
                repair = _record(
                    seq + 1,
                    now_ms,
                    actor,
                    "audit.repaired",
                    "audit",
                    {"dropped_bytes": size - keep},
                    prev,
                )
                lines.append(repair)
                seq, prev = repair["seq"], repair["hash"]
            record = _record(seq + 1, now_ms, actor, action, obj, details, prev)
            lines.append(record)
            _write_all(fd, b"".join(_line(r) for r in lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        return record

    def _head(self, fd: int) -> tuple[int, str, int, int]:
        """(last seq, last hash, bytes to keep, file size), reading only the file's end."""
        size = os.fstat(fd).st_size
        buf, start = b"", size
        while start > 0 and buf.count(b"\n") < 2:
            step = min(_CHUNK, start)
            start -= step
            buf = os.pread(fd, step, start) + buf
        end = buf.rfind(b"\n")
        if end < 0:
            return 0, GENESIS, 0, size
        last = buf[buf.rfind(b"\n", 0, end) + 1 : end]
        try:
            record = json.loads(last)
            return int(record["seq"]), str(record["hash"]), start + end + 1, size
        except (ValueError, TypeError, KeyError):
            raise CcvaultError(
                f"audit log {self.path}",
                "its last line is not a record; see `ccvault audit verify`",
            ) from None

    def records(self) -> Iterator[dict[str, Any]]:
        """Complete records in file order; a line still being written (no newline) is skipped."""
        for number, _, line in self._lines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not _is_record(record):
                raise CcvaultError(
                    f"audit log {self.path}",
                    f"line {number} is not a record; see `ccvault audit verify`",
                )
            yield record

    def verify(self) -> AuditCheck:
        """Recompute every hash and link. A torn last line is not a failure: a reader can see
        an append in progress, and after a crash the next append drops and records it."""
        return self.verify_from(AuditCursor())[0]

    def verify_from(self, cursor: AuditCursor) -> tuple[AuditCheck, AuditCursor]:
        """Verify what was appended after `cursor` (a previous call's), and that the last
        record verified then is still there unchanged: the daemon checks the chain each
        minute without re-reading a year of records. Returns the cursor to continue from."""
        problem = self._moved(cursor)
        if problem:
            return AuditCheck(False, cursor.records, cursor.line, problem), cursor  # stays broken
        seq, prev, count, at = cursor.seq, cursor.prev, cursor.records, cursor
        for number, start, line in self._lines(cursor.offset, cursor.line):
            try:
                record = json.loads(line)
            except ValueError:
                return AuditCheck(False, count, number, "not JSON"), at
            problem = _problem(record, seq, prev, number)
            if problem:
                return AuditCheck(False, count, number, problem), at
            seq, prev, count = record["seq"], record["hash"], count + 1
            at = AuditCursor(start + len(line) + 1, number, seq, prev, count, start)
        torn = self._torn_bytes()
        note = f"torn last line ({torn} bytes), dropped by the next append" if torn else ""
        return AuditCheck(True, count, None, note), at

    def _moved(self, cursor: AuditCursor) -> str:
        """Why the records verified up to `cursor` are no longer as they were, or ""."""
        if cursor.offset == 0:
            return ""
        try:
            with self.path.open("rb") as f:
                f.seek(cursor.last_start)
                line = f.read(cursor.offset - cursor.last_start)
        except FileNotFoundError:
            return "the audit log is gone"
        try:
            ok = line.endswith(b"\n") and json.loads(line)["hash"] == cursor.prev
        except (ValueError, KeyError, TypeError):
            ok = False
        return (
            ""
            if ok
            else (f"line {cursor.line} changed or the log was truncated since it was verified")
        )

    def _lines(self, offset: int = 0, before: int = 0) -> Iterator[tuple[int, int, bytes]]:
        """(line number, byte offset, complete line without its newline) from `offset`."""
        try:
            with self.path.open("rb") as f:
                f.seek(offset)
                for number, line in enumerate(f, before + 1):
                    if line.endswith(b"\n"):
                        yield number, offset, line[:-1]
                    offset += len(line)
        except FileNotFoundError:
            return

    def _torn_bytes(self) -> int:
        try:
            with self.path.open("rb") as f:
                _, _, keep, size = self._head(f.fileno())
        except FileNotFoundError:
            return 0
        return size - keep


def _is_record(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() == set(KEYS)


def _problem(record: Any, seq: int, prev: str, number: int) -> str:
    if not _is_record(record):
        return "not an audit record (wrong keys)"
    if record["hash"] != record_hash(record):
        return "hash mismatch"
    if record["prev"] != prev:
        return "prev is not 64 zeros" if number == 1 else f"prev does not match line {number - 1}"
    if record["seq"] != seq + 1:
        return f"seq {record['seq']} after {seq}"
    return ""


def _record(
    seq: int, now_ms: int, actor: str, action: str, obj: str, details: dict[str, Any], prev: str
) -> dict[str, Any]:
    record = {
        "seq": seq,
        "time": utc_text(now_ms),
        "actor": actor,
        "action": action,
        "object": obj,
        "details": details,
        "prev": prev,
    }
    record["hash"] = record_hash(record)
    return record


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
