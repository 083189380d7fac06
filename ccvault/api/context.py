"""What every request handler needs, built once by the daemon (or a test) and passed in.

No module-global paths or connections: `create_app(ctx)` closes over one context.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from ccvault.catalog.writer import CatalogWriter
from ccvault.clock import Clock
from ccvault.config import Config
from ccvault.volumes import Volume


@dataclass
class ApiContext:
    config: Config
    writer: CatalogWriter
    clock: Clock
    volumes: Callable[[], list[Volume]]
    exports: Any = None  # ccvault.export.ExportJobs, when the daemon runs export jobs
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _seen_lock: threading.Lock = field(default_factory=threading.Lock)

    def reader(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.writer.reader()

    def now_ms(self) -> int:
        return self.clock.wall_ms()

    def first_view(self, session: str, key: str) -> bool:
        """True the first time a session views a thing (a segment, a clip range): views are
        audited once per session, not once per HTTP range request."""
        with self._seen_lock:
            if (session, key) in self._seen:
                return False
            self._seen.add((session, key))
            return True

    def audit(self, actor: str, action: str, obj: str, details: dict[str, Any]) -> None:
        self.writer.record_event(actor, action, obj, details, self.now_ms())
