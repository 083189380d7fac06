"""Issue 14, item 8: the Host header is checked against this server's names. Without the check,
a page on another site can rebind its own name to this server's address (DNS rebinding) and
have a browser talk to the API as that site; every such request names the attacker's host. Now
a name that is not this server's is refused before anything else (`api.guard.host_problem`);
IP addresses are accepted (rebinding needs a name), so are localhost, this machine's name, the
listen host and `[http] allowed_hosts`."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.api_peer import connect, read_reply, serve, with_http
from tests.conftest import write_config

FOREIGN = [
    "evil.example",
    "evil.example:8750",
    "EVIL.example.",
    "localhost.evil.example",
    "cctv.example.evil.example",
    "127.0.0.1.nip.io",
    "xn--80ak6aa92e.com",
    "",
]
OURS = [
    "127.0.0.1",
    "127.0.0.1:8750",
    "[::1]:8750",
    "[::ffff:127.0.0.1]",
    "localhost",
    "LOCALHOST:8750",
    "localhost.",
    socket.gethostname(),
    "cctv.example",
    "CCTV.Example:443",
]


def ask(url: str, host: str | None, token: str) -> tuple[int | None, bytes]:
    """GET /api/me with exactly this Host header (None: none at all, as HTTP/1.0 may)."""
    version, lines = ("HTTP/1.0", []) if host is None else ("HTTP/1.1", [f"Host: {host}"])
    request = [f"GET /api/me {version}", *lines, f"Authorization: Bearer {token}"]
    request += ["Connection: close", "", ""]
    with connect(url) as sock:
        sock.sendall("\r\n".join(request).encode())
        return read_reply(sock)


def test_a_request_naming_another_host_is_refused_whoever_sends_it(tmp_path: Path) -> None:
    config = with_http(
        write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}]),
        allowed_hosts=["cctv.example"],
    )
    with serve(config) as api:
        token = api.tokens["admin"]  # a valid token changes nothing: the Host comes first
        for host in [*FOREIGN, None]:
            status, reply = ask(api.url, host, token)
            assert status == 400, (host, reply)
            assert b'"field":"Host"' in reply.replace(b" ", b""), (host, reply)
        for host in OURS:
            status, reply = ask(api.url, host, token)
            assert status == 200, (host, reply)
        page = api.client(None).get("/", headers={"Host": "evil.example"})
        assert page.status_code == 400 and b"<html" not in page.content.lower()
