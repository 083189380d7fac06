"""What every request handler needs, built once by the daemon (or a test) and passed in.

No module-global paths or connections: `create_app(ctx)` closes over one context.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ccvault.access.log import AccessLog
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.host.clock import Clock
from ccvault.recorder.live import LiveRelay
from ccvault.storage.volumes import Volume

SEEN_LIMIT = 200_000
REPEAT_S = 60.0  # a session's look at one thing is recorded at least once a minute
SAME_START_S = 2.0  # a restart sooner than this is a player's duplicate request, not a replay


class MetricsPage(Protocol):
    """What GET /metrics serves: the exposition body and its content type."""

    def render(self) -> tuple[bytes, str]: ...


@dataclass
class ApiContext:
    config: Config
    writer: CatalogWriter
    clock: Clock
    volumes: Callable[[], list[Volume]]
    exports: Any = None  # ccvault.evidence.jobs.ExportJobs, when the daemon runs export jobs
    metrics: MetricsPage | None = None  # what GET /metrics renders; None: 503
    repeat_s: float = REPEAT_S
    same_start_s: float = SAME_START_S
    _seen: dict[tuple[str, str], float] = field(default_factory=dict)
    access: AccessLog | None = None  # takes access events (the daemon's)
    live: LiveRelay | None = None  # the recorders' live view (the daemon's)
    _seen_lock: threading.Lock = field(default_factory=threading.Lock)

    def reader(self) -> AbstractContextManager[sqlite3.Connection]:
        """This thread's read-only connection, kept across requests (`CatalogWriter.reader`:
        opening one per request cost ~0.45 ms of a ~3 ms search, bench/search.py). It reads
        the catalog the writer has open, or nothing (`CatalogGone`, a 503)."""
        return self.writer.reader()

    def apply(self, config: Config) -> None:
        self.config = config

    def now_ms(self) -> int:
        return self.clock.wall_ms()

    def record_due(self, session: str, key: str, fresh: bool = True) -> bool:
        """Whether this look by `session` at `key` (a segment, a clip range, a question) gets
        an audit record: every look that starts afresh (`fresh`: a request without Range or
        from byte 0 — a playback, a replay), and any other once `repeat_s` (a minute) has passed
        since the last record. So the range requests of one playback are one record, yet no
        request pattern can watch for long unrecorded: skipping byte 0 still leaves a record a
        minute. A fresh request within `same_start_s` (2 s) of the last record is the same
        start (players may ask for byte 0 twice as they open a file). Kept in memory: a
        restart only adds records."""
        now = time.monotonic()
        with self._seen_lock:
            last = self._seen.get((session, key))
            if last is not None and now - last < (self.same_start_s if fresh else self.repeat_s):
                return False
            if len(self._seen) >= SEEN_LIMIT:  # bounded: forgetting only adds a record
                self._seen = {k: t for k, t in self._seen.items() if now - t < self.repeat_s}
                if len(self._seen) >= SEEN_LIMIT:
                    self._seen.clear()
            self._seen[(session, key)] = now
            return True

    def audit(self, actor: str, action: str, obj: str, details: dict[str, Any]) -> None:
        self.writer.record_event(actor, action, obj, details, self.now_ms())
