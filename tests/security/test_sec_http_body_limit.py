"""Issue 14, item 4: a request body cannot grow the daemon. A 300 MiB POST, unauthenticated, grew
it to 1 GB: FastAPI read the whole body before it looked at credentials. Now every body is
capped before authentication (`api.guard.RequestGuard`), declared or streamed."""

from __future__ import annotations

import json
import select
import socket
from pathlib import Path

from tests.api_peer import Api, connect, read_reply, serve, with_http
from tests.conftest import write_config

LIMIT = 65536


def head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


def refused(status: int | None, reply: bytes) -> bool:
    """413 in our error shape, naming the body, and the connection closed (read_reply read
    to the end: the server hung up instead of reading on)."""
    if status != 413:
        return False
    error = json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]
    return error["code"] == "too_large" and error["field"] == "body"


def stream_chunks(sock: socket.socket, total: int) -> tuple[int, int | None, bytes]:
    """Send a chunked body of `total` bytes, 8 KiB a chunk, while watching for an answer.
    Returns (bytes sent before the answer, status, reply)."""
    sent, piece = 0, b"x" * 8192
    try:
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or hung up) before the body was all sent
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        else:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection on us: what it sent is still readable
    status, reply = read_reply(sock)
    return sent, status, reply


def test_a_body_over_the_limit_is_refused_before_authentication_and_never_read(
    tmp_path: Path,
) -> None:
    config = with_http(
        write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}]),
        max_body_bytes=LIMIT,
    )
    with serve(config) as api:
        claimed_300_mib(api)
        streamed_without_a_length(api)
        right_at_the_limit(api)


def claimed_300_mib(api: Api) -> None:
    """A declared length over the limit: 413 at once — before the body, before credentials,
    on a JSON route, a route that takes no body, and the sign-in route alike."""
    for method, path, auth in (
        ("POST", "/api/holds", None),
        ("GET", "/api/me", f"Authorization: Bearer {api.tokens['admin']}"),
        ("POST", "/api/session", None),
    ):
        with connect(api.url) as sock:
            lines = ["Content-Type: application/json", f"Content-Length: {300 << 20}"]
            sock.sendall(head(method, path, *lines, *([auth] if auth else [])) + b"{")
            status, reply = read_reply(sock)  # no more of the 300 MiB is ever sent
        assert refused(status, reply), (method, path, status, reply[:300])


def streamed_without_a_length(api: Api) -> None:
    """Chunked: counted as it is read, refused once past the limit, the rest never read —
    also from a signed-in operator on the route that takes the biggest JSON."""
    for auth in (None, f"Authorization: Bearer {api.tokens['operator']}"):
        with connect(api.url) as sock:
            lines = ["Content-Type: application/json", "Transfer-Encoding: chunked"]
            sock.sendall(head("POST", "/api/holds", *lines, *([auth] if auth else [])))
            sent, status, reply = stream_chunks(sock, 8 << 20)
        assert refused(status, reply), (auth is not None, status, reply[:300])
        assert sent < 8 << 20, "the server read the whole body before answering"
    assert api.client("viewer").get("/api/holds").json() == []


def right_at_the_limit(api: Api) -> None:
    """The limit is the limit: a body of exactly LIMIT bytes is read (and judged as JSON)."""
    body = json.dumps({"from": "-1h", "to": "now", "reason": "x"}).encode()
    body = body[:-1] + b" " * (LIMIT - len(body)) + b"}"
    reply = api.client("operator").post(
        "/api/holds", content=body, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 201, reply.text
    over = api.client("operator").post(
        "/api/holds", content=body + b" ", headers={"content-type": "application/json"}
    )
    assert over.status_code == 413 and over.json()["error"]["field"] == "body"
