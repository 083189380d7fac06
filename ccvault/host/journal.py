"""A second, independent copy of each audit record in the systemd journal (`[audit] journald`).

Someone who can rewrite the audit log, its checkpoints and the catalog can still not reach
the journal, which journald owns. systemd's native protocol needs no library: one datagram
per entry to /run/systemd/journal/socket, fields as `NAME=value` lines. A record too big for
one datagram goes as its chain fields only (seq, hash, prev, action): the chain is what the
copy must prove. Sending never blocks or fails an append; a journal that is not there is said
once in the log (`audit.journald_unavailable`), then sending goes on being tried quietly.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
IDENTIFIER = "ccvault-audit"
MAX_MESSAGE = 64 * 1024  # comfortably under the kernel's datagram limit (net.core.wmem_default)

log = structlog.get_logger("ccvault.audit")


class JournalSink:
    def __init__(self, path: Path = JOURNAL_SOCKET) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._lock = threading.Lock()
        self._warned = False
        self.sent = 0

    def send_records(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self._send(entry(record))

    def _send(self, data: bytes) -> None:
        with self._lock:
            try:
                self._sock.sendto(data, socket.MSG_DONTWAIT, str(self.path))
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    log.warning("audit.journald_unavailable", socket=str(self.path), error=str(exc))
                return
            self.sent += 1


def entry(record: dict[str, Any]) -> bytes:
    """One journal entry in the native protocol; JSON has no raw newline, so every field is
    the simple `NAME=value` form."""
    message = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    truncated = len(message.encode()) > MAX_MESSAGE
    if truncated:
        chain = {k: record.get(k) for k in ("seq", "time", "action", "object", "prev", "hash")}
        message = json.dumps(chain, separators=(",", ":"), ensure_ascii=False)
    fields = {
        "MESSAGE": message,
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": IDENTIFIER,
        "CCVAULT_AUDIT_SEQ": str(record.get("seq")),
        "CCVAULT_AUDIT_HASH": str(record.get("hash")),
        "CCVAULT_AUDIT_PREV": str(record.get("prev")),
        "CCVAULT_AUDIT_ACTION": str(record.get("action")),
        "CCVAULT_AUDIT_TRUNCATED": "1" if truncated else "0",
    }
    return b"".join(f"{k}={v}\n".encode() for k, v in fields.items())
