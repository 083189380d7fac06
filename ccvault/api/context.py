"""What every request handler needs, built once by the daemon (or a test) and passed in.

No module-global paths or connections: `create_app(ctx)` closes over one context.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from ccvault.access.log import AccessLog
from ccvault.catalog import db
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.model import Config
from ccvault.host.clock import Clock
from ccvault.storage.volumes import Volume

SEEN_LIMIT = 200_000


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
    access: AccessLog | None = None  # takes access events (the daemon's)
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _seen_lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    def reader(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read-only connection of this thread's own, kept across requests: opening one
        per request cost ~0.45 ms of a ~3 ms search (bench/search.py). Read-only and in
        autocommit, each query sees the latest commit."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = db.connect(self.writer.path, readonly=True)
        return nullcontext(conn)

    def apply(self, config: Config) -> None:
        self.config = config

    def now_ms(self) -> int:
        return self.clock.wall_ms()

    def first_view(self, session: str, key: str) -> bool:
        """True the first time a session views a thing (a segment, a clip range): views are
        audited once per session, not once per HTTP range request."""
        with self._seen_lock:
            if (session, key) in self._seen:
                return False
            if len(self._seen) >= SEEN_LIMIT:
                self._seen.clear()  # bounded: at worst a view is audited twice
            self._seen.add((session, key))
            return True

    def audit(self, actor: str, action: str, obj: str, details: dict[str, Any]) -> None:
        self.writer.record_event(actor, action, obj, details, self.now_ms())
