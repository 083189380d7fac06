"""A segment whose COMMIT met a lost connection: committed or not, nobody can tell — and the
retry must not care (issue 16, item 4).

The writer reaches the real PostgreSQL through a TCP relay that cuts the connection at the
segment row's COMMIT: before passing it on (the row never committed), or after the server
answered (it committed; the client never hears). Either way `SegmentStore.add` raises
`CommitUnknown`, keeps the file it placed and the spool copy, and the retry ends with the
segment catalogued exactly once, its file where its row says, the spool copy gone — also when
the retry is sent to another volume.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from ccvault.catalog.audit import audit_log
from ccvault.catalog.writer import CatalogWriter, CommitUnknown
from ccvault.config.loading import load
from ccvault.host.clock import SystemClock
from ccvault.storage.media import probe, sha256_file
from ccvault.storage.store import SegmentStore
from ccvault.storage.volumes import open_volumes
from tests.conftest import pg_catalog, write_config
from tests.peers import make_clip
from tests.peers.postgres import PostgresServer, postgres_available

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL 15 is not installed"),
]

START_MS = 1_790_000_000_000


class CutAtCommit:
    """A TCP relay to the server that, once armed, cuts the connection carrying a COMMIT:
    `before` drops it unsent (never committed), `after` passes it on and drops the answer
    (committed, unheard). Real sockets, real server; only the wire is cut."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.cut: str | None = None
        self.prepared: set[bytes] = set()  # names psycopg prepared COMMIT under
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            answered = threading.Event()  # set: swallow the server's next answer, then cut
            threading.Thread(target=self._up, args=(client, server, answered), daemon=True).start()
            threading.Thread(
                target=self._down, args=(server, client, answered), daemon=True
            ).start()

    def _up(self, client: socket.socket, server: socket.socket, answered: threading.Event) -> None:
        while data := _recv(client):
            if self._commits(data) and self.cut is not None:
                mode, self.cut = self.cut, None
                if mode == "before":
                    break
                answered.set()
            server.sendall(data)
        _close(client, server)

    def _commits(self, data: bytes) -> bool:
        """Does this chunk of the client's messages run COMMIT? Text (`Q`), parsed (`P`), or
        a statement prepared as COMMIT earlier, bound (`B`): psycopg prepares what it repeats.
        (The start-up packets have no type byte: whatever they parse as, they are no COMMIT.)"""
        found, at = False, 0
        while at + 5 <= len(data):
            kind, size = data[at : at + 1], int.from_bytes(data[at + 1 : at + 5], "big")
            fields = data[at + 5 : at + 1 + size].split(b"\0")
            if kind == b"Q" and fields[0].strip() == b"COMMIT":
                found = True
            elif kind == b"P" and len(fields) > 1 and fields[1].strip() == b"COMMIT":
                self.prepared.add(fields[0])
                found = True
            elif kind == b"B" and len(fields) > 1 and fields[1] in self.prepared:
                found = True
            at += 1 + max(size, 4)
        return found

    def _down(
        self, server: socket.socket, client: socket.socket, answered: threading.Event
    ) -> None:
        while data := _recv(server):
            if answered.is_set():
                break  # the server said COMMIT: the client never hears it
            client.sendall(data)
        _close(client, server)

    def close(self) -> None:
        self.listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def rows(url: str) -> list[tuple[str, str]]:
    """(volume, path) of every segment row, read from the server directly."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT v.name, s.path FROM segments s JOIN volumes v ON v.id = s.volume_id"
        ).fetchall()


@pytest.mark.parametrize(
    ("cut", "retry_on"), [("before", "hot"), ("after", "hot"), ("after", "other")]
)
def test_a_commit_lost_on_the_wire_is_retried_into_exactly_one_row(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str, cut: str, retry_on: str
) -> None:
    catalog = pg_catalog(postgres_server, pg_database, tmp_path)
    relay = CutAtCommit(postgres_server.port)
    assert catalog.password_file is not None
    passfile = catalog.password_file  # the relay's port, the server's password
    passfile.write_text(
        passfile.read_text().replace(f":{postgres_server.port}:", f":{relay.port}:")
    )
    proxied = replace(
        catalog, url=catalog.url.replace(f":{postgres_server.port}/", f":{relay.port}/")
    )
    volumes_cfg = [
        {"name": "hot", "path": str(tmp_path / "hot"), "role": "hot"},
        {"name": "other", "path": str(tmp_path / "other"), "role": "hot"},
    ]
    config = load(
        write_config(tmp_path, [{"name": "door", "url": "demo://"}], volumes=volumes_cfg,
                     catalog=proxied)
    ).config  # fmt: skip
    clock = SystemClock()
    writer = CatalogWriter(config.catalog_target, audit_log(config), config.lock_base)
    volumes = {v.name: v for v in open_volumes(config, writer, clock.wall_ms())}
    offered = [volumes["hot"]]
    store = SegmentStore(writer, lambda: offered, clock)
    spool = tmp_path / "spool" / "door" / "1"
    spool.mkdir(parents=True)
    src = make_clip(spool / "000000.mp4", 2)
    media, sha = probe(src), sha256_file(src)
    end_ms = START_MS + media.duration_ms

    relay.cut = cut
    with pytest.raises(CommitUnknown):
        store.add(src, "door", START_MS, end_ms, media, sha, "recorded")
    assert src.exists(), "the spool copy goes only once the row is known to be there"
    placed = list((tmp_path / "hot" / "door").rglob("*.mp4"))
    assert len(placed) == 1, "the placed file stays: the row may point at it"
    assert len(rows(pg_database)) == (1 if cut == "after" else 0)

    offered[:] = [volumes[retry_on]]
    stored = store.add(src, "door", START_MS, end_ms, media, sha, "recorded")
    assert stored.outcome == ("duplicate" if cut == "after" else "ingested"), stored
    [(volume, rel)] = rows(pg_database)
    assert not src.exists()
    on_disk = {
        (v, str(p.relative_to(tmp_path / v)))
        for v in ("hot", "other")
        if (tmp_path / v / "door").is_dir()
        for p in (tmp_path / v / "door").rglob("*.mp4")
    }
    assert on_disk == {(volume, rel)}, "one file, the one its row names"
    assert sha256_file(tmp_path / volume / rel) == sha
    writer.close()
    relay.close()
    shutil.rmtree(spool)
