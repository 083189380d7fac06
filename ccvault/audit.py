"""The audit log: append-only JSON lines, each record hash-chained to the one before.

Appends happen inside a catalog writer transaction (`CatalogWriter.audit`): SQLite's write
lock serialises the daemon and CLI commands, so two processes never append after the same
head and the chain never forks. Editing, removing or reordering a line breaks the chain at
that line, which `verify` reports.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccvault.durable import fsync_dir
from ccvault.timefmt import utc_text

GENESIS = "0" * 64
TAIL_BYTES = 1 << 16


def record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditCheck:
    ok: bool
    records: int
    bad_line: int | None
    problem: str


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, *, actor: str, action: str, obj: str, details: dict[str, Any],
               now_ms: int) -> dict[str, Any]:
        """Append one record and fsync it; the caller holds the catalog write lock."""
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            head, torn = _head(fd)
            lines = []
            if torn:
                # A crash mid-append left bytes after the last newline: that record never
                # completed. Drop it, and say so in the chain, instead of breaking it for ever.
                os.ftruncate(fd, os.fstat(fd).st_size - torn)
                head = _make(head, actor, "audit.repaired", "audit", {"dropped_bytes": torn},
                             now_ms)
                lines.append(head)
            record = _make(head, actor, action, obj, details, now_ms)
            lines.append(record)
            os.write(fd, "".join(_line(r) for r in lines).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        try:
            f = open(self.path, encoding="utf-8")  # noqa: SIM115 (a generator owns it)
        except FileNotFoundError:
            return
        with f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def verify(self) -> AuditCheck:
        prev, seq, count = GENESIS, 0, 0
        try:
            f = open(self.path, encoding="utf-8")  # noqa: SIM115
        except FileNotFoundError:
            return AuditCheck(True, 0, None, "")
        with f:
            for number, line in enumerate(f, 1):
                problem = _check(line, prev, seq, number)
                if problem:
                    return AuditCheck(False, count, number, problem)
                record = json.loads(line)
                prev, seq, count = record["hash"], record["seq"], count + 1
        return AuditCheck(True, count, None, "")


def _make(head: dict[str, Any] | None, actor: str, action: str, obj: str,
          details: dict[str, Any], now_ms: int) -> dict[str, Any]:
    record = {"seq": (head["seq"] + 1) if head else 1, "time": utc_text(now_ms),
              "actor": actor, "action": action, "object": obj, "details": details,
              "prev": head["hash"] if head else GENESIS}
    record["hash"] = record_hash(record)
    return record


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _head(fd: int) -> tuple[dict[str, Any] | None, int]:
    """The last complete record, and how many torn bytes follow it (read from the end)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, 0
    tail = os.pread(fd, min(size, TAIL_BYTES), max(size - TAIL_BYTES, 0))
    torn = len(tail) - (tail.rfind(b"\n") + 1)
    complete = tail[:len(tail) - torn]
    if not complete:
        if size > TAIL_BYTES:
            raise RuntimeError("audit log: last record longer than 64 KiB")
        return None, torn
    last = complete.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return json.loads(last), torn


def _check(line: str, prev: str, seq: int, number: int) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(record, dict) or "hash" not in record:
        return "not an audit record"
    if record.get("seq") != seq + 1:
        return f"seq {record.get('seq')} after {seq}"
    if record.get("prev") != prev:
        return f"prev does not match line {number - 1}" if number > 1 else "prev is not genesis"
    if record_hash(record) != record["hash"]:
        return "hash mismatch"
    return ""
