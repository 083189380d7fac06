"""Issue 14, item 4: slow clients cannot hold the server's connections. Slow-header connections
exhausted the daemon's descriptors: uvicorn waits for headers for ever, and accepts as many
connections as come. Now each request must arrive within `request_timeout_seconds` of its first
byte however it trickles (`api.connections.RequestTimeoutProtocol`), and connections past
`max_connections` — or past `max_connections_per_client` from one address — are closed as they
are accepted (`api.connections.Listener`). The other way round, a client that stops taking an
answer is aborted after `stall_timeout_seconds` (`RequestTimeoutProtocol.pause_writing`)."""

from __future__ import annotations

import socket
import sqlite3
import struct
import subprocess
import time
from pathlib import Path

import httpx
import imageio_ffmpeg

from ccvault.api.connections import client_key
from tests.api_peer import Api, closed_by_server, connect, read_reply, serve, with_http
from tests.conftest import run_cli, wait_for, write_config

CAMERAS = [{"name": "door", "url": "demo://", "enabled": False}]


def get_from(api: Api, source: str, path: str = "/healthz") -> int:
    """A whole request from another loopback address (another client, as the caps count)."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=api.url, transport=transport, timeout=30) as client:
        return client.get(path).status_code


def trickle_until_closed(socks: dict[str, socket.socket], timeout: float) -> dict[str, float]:
    """Send each connection one more byte every 0.2 s, as a slowloris does, until the server
    closes it; returns the seconds each one lasted."""
    started, lasted = time.monotonic(), {}

    def all_closed() -> bool:
        for name, sock in socks.items():
            if name in lasted:
                continue
            if closed_by_server(sock):
                lasted[name] = time.monotonic() - started
                continue
            try:
                if name != "silent":
                    sock.send(b"X" if name == "body" else b"a")
            except OSError:
                lasted[name] = time.monotonic() - started
        return len(lasted) == len(socks)

    wait_for(all_closed, timeout, interval=0.2, what=f"the server to close {sorted(socks)}")
    return lasted


def test_a_slow_or_silent_client_is_disconnected_however_it_trickles(tmp_path: Path) -> None:
    config = with_http(write_config(tmp_path, CAMERAS), request_timeout_seconds=1)
    with serve(config) as api:
        socks = {name: connect(api.url) for name in ("silent", "headers", "body", "second")}
        socks["headers"].sendall(b"GET /api/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks["body"].sendall(
            b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"
        )
        # A kept-alive connection: its first request is served, its second one trickles.
        socks["second"].sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert b" 200 " in socks["second"].recv(65536)
        socks["second"].sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        lasted = trickle_until_closed(socks, timeout=60)
        assert set(lasted) == {"silent", "headers", "body", "second"}
        for sock in socks.values():
            sock.close()
        # A client that sends its request at once is still served, on a fresh connection.
        assert api.client("viewer").get("/api/me").status_code == 200


def test_slow_connections_cannot_keep_a_prompt_client_out(tmp_path: Path) -> None:
    """Past one address's share a connection is closed at once; at the server's cap, a
    slow connection of the client holding most makes way for a newcomer."""
    config = with_http(
        write_config(tmp_path, CAMERAS),
        max_connections=16,
        max_connections_per_client=4,
        request_timeout_seconds=120,
    )
    with serve(config) as api:
        held = []
        for _ in range(4):  # one client's share, each connection idle in its headers
            held.append(connect(api.url, "127.0.0.1"))
            held[-1].sendall(b"GET /healthz HTTP/1.1\r\n")
        with connect(api.url, "127.0.0.1") as fifth:
            status, reply = read_reply(fifth, timeout=20)  # refused before it sent anything
        assert status == 503 and b"retry-after" in reply.lower(), reply
        for i in range(12):  # fill the server from other addresses: 16 open in all
            held.append(connect(api.url, f"127.0.1.{1 + i // 4}"))
            held[-1].sendall(b"GET /healthz HTTP/1.1\r\n")
        # A new client at the cap gets in: the client holding most (4, all slow) makes way
        # with its oldest connection, which is told why.
        assert get_from(api, "127.0.0.2") == 200
        status, reply = read_reply(held[0], timeout=20)
        assert status == 503, reply
        for sock in held[1:4]:
            sock.close()  # the first client lets go: its share is free again
        wait_for(lambda: get_from(api, "127.0.0.1") == 200, 30, what="a freed connection to count")
        for sock in held:
            sock.close()
    # An IPv6 client is one /64: it gets no fresh share per address it picks in it.
    assert client_key(("2001:db8:1:2::1", 1)) == client_key(("2001:db8:1:2:ffff::9", 2))
    assert client_key(("::ffff:127.0.0.1", 1)) == client_key(("127.0.0.1", 2))
    assert client_key(("2001:db8:1:3::1", 1)) != client_key(("2001:db8:1:2::1", 1))


def tcp_state(sock: socket.socket) -> int:
    """The connection's TCP state as the kernel keeps it (1: established), read without
    taking any of the bytes waiting in it."""
    return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]


def noisy_segment(tmp_path: Path, config: Path) -> int:
    """One catalogued segment of several MiB (1080p noise: more than the kernel's socket
    buffers hold, so a reader that stops leaves the server with bytes it cannot send)."""
    clip = tmp_path / "noise.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc2=size=1920x1080:rate=15,noise=alls=60:allf=t", "-t", "4", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "15", "-bf", "0", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    assert clip.stat().st_size > 6 << 20, clip.stat().st_size
    done = run_cli(config, "import", "--camera", "door", "--start", "-1h", str(clip))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(config.parent / "catalog.sqlite") as conn:
        return conn.execute("SELECT id FROM segments ORDER BY bytes DESC LIMIT 1").fetchone()[0]


def test_a_client_that_stops_reading_a_download_is_disconnected(tmp_path: Path) -> None:
    config = with_http(write_config(tmp_path, CAMERAS, segment_seconds=10), stall_timeout_seconds=1)
    segment = noisy_segment(tmp_path, config)
    with serve(config) as api:
        host, port = api.url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, soon full
        sock.connect((host, int(port)))
        sock.sendall(
            f"GET /api/segments/{segment}/file HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {api.tokens['viewer']}\r\n\r\n".encode()
        )
        assert sock.recv(12) == b"HTTP/1.1 200"
        # Nothing more is read: the server gives up on the connection (a reset), it does not
        # keep the file and the task sending it for ever.
        wait_for(lambda: tcp_state(sock) != 1, 60, what="the stalled download cut off")
        sock.close()
        # A client that reads is served the whole file.
        got = api.client("viewer").get(f"/api/segments/{segment}/file")
        assert got.status_code == 200 and len(got.content) > 6 << 20
