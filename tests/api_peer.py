"""A real ccvault HTTP API on loopback for tests: the daemon's own server (`ApiServer`: its
connection caps, timeouts and request guard) over a config, in a thread."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ccvault.api.context import ApiContext
from ccvault.api.server import ApiServer
from ccvault.api.users import add as add_user
from ccvault.catalog.audit import audit_log
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.evidence.jobs import ExportJobs
from ccvault.host.clock import Clock, SystemClock
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.storage.volumes import open_volumes
from tests.conftest import toml_value


@dataclass
class Api:
    url: str
    ctx: ApiContext
    tokens: dict[str, str]  # role → a token of a user with that role (user = role name)
    server: ApiServer

    def client(self, role: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def export_jobs(config_path: Path) -> tuple[ExportJobs, CatalogWriter]:
    """Export jobs over config_path with a writer of their own (for `serve(exports=...)`);
    stop the jobs and close the writer after."""
    config = load(config_path).config
    writer = CatalogWriter(config.catalog_target, audit_log(config))
    clock = SystemClock()
    volumes = open_volumes(config, writer, clock.wall_ms())
    return ExportJobs(config, writer, lambda: volumes, clock, ffmpeg_binary(config)), writer


def with_http(config: Path, **settings: object) -> Path:
    """The config with these `[http]` keys added (write_config's [http] has `listen` only)."""
    text = config.read_text()
    anchor = 'listen = "127.0.0.1:0"'
    assert anchor in text, "expected write_config's [http] section"

    def value(v: object) -> str:
        return f"[{', '.join(map(toml_value, v))}]" if isinstance(v, list) else toml_value(v)

    extra = "".join(f"\n{key} = {value(v)}" for key, v in settings.items())
    config.write_text(text.replace(anchor, anchor + extra, 1))
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(config_path: Path, exports: object = None, clock: Clock | None = None) -> Iterator[Api]:
    """Serve the API for config_path; users viewer/operator/admin exist with their tokens.
    `clock`: what the API takes for now (a test's fixed day), else the system's."""
    config = load(config_path).config
    clock = clock or SystemClock()
    writer = CatalogWriter(config.catalog_target, audit_log(config))
    volumes = open_volumes(config, writer, clock.wall_ms())
    ctx = ApiContext(config, writer, clock, lambda: volumes, exports)
    with writer.reader() as conn:
        existing = {r[0] for r in conn.execute("SELECT name FROM users")}
    tokens = {
        role: add_user(writer, f"{role}-{len(existing)}", role, None, "test", clock.wall_ms())
        for role in ("viewer", "operator", "admin")
    }
    server = ApiServer(ctx)
    server.start()
    try:
        yield Api(server.url, ctx, tokens, server)
    finally:
        server.stop()
        writer.close()


def connect(url: str, source: str | None = None, timeout: float = 30) -> socket.socket:
    """A raw TCP connection to the API, from `source` (another loopback address: 127.0.0.2…)
    when given — a second client as the server's per-address counts see it."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return socket.create_connection(
        (parts.hostname, parts.port), timeout, (source, 0) if source else None
    )


def read_reply(sock: socket.socket, timeout: float = 30) -> tuple[int | None, bytes]:
    """Everything the server sends until it closes the connection: (status, bytes). The status
    is None when it closed without answering, or did not close within `timeout`."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return None, data
    except ConnectionResetError:
        pass
    head = data.split(b"\r\n", 1)[0].split()
    return (int(head[1]) if len(head) > 1 and head[1].isdigit() else None), data


def closed_by_server(sock: socket.socket) -> bool:
    """The server has closed this connection (reading what it sent first, without waiting)."""
    while select.select([sock], [], [], 0)[0]:
        try:
            if not sock.recv(65536):
                return True
        except OSError:
            return True
    return False
