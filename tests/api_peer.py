"""A real ccvault HTTP API on loopback for tests: uvicorn in a thread, the app over a config."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from ccvault.api.app import create_app
from ccvault.api.context import ApiContext
from ccvault.api.users import add as add_user
from ccvault.catalog.audit import AuditLog
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.host.clock import SystemClock
from ccvault.storage.volumes import open_volumes


@dataclass
class Api:
    url: str
    ctx: ApiContext
    tokens: dict[str, str]  # role → a token of a user with that role (user = role name)

    def client(self, role: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(config_path: Path, exports: object = None) -> Iterator[Api]:
    """Serve the API for config_path; users viewer/operator/admin exist with their tokens."""
    config = load(config_path).config
    clock = SystemClock()
    writer = CatalogWriter(config.storage.catalog, AuditLog(config.audit_path))
    volumes = open_volumes(config, writer, clock.wall_ms())
    ctx = ApiContext(config, writer, clock, lambda: volumes, exports)
    with writer.reader() as conn:
        existing = {r[0] for r in conn.execute("SELECT name FROM users")}
    tokens = {
        role: add_user(writer, f"{role}-{len(existing)}", role, None, "test", clock.wall_ms())
        for role in ("viewer", "operator", "admin")
    }
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ctx), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield Api(f"http://127.0.0.1:{port}", ctx, tokens)
    finally:
        server.should_exit = True
        thread.join(10)
        writer.close()
