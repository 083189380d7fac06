"""What every request meets before routing or authentication: the Host it names, the size of its
body, and the headers every answer carries.

* **Host.** A page on another site can make a browser send requests here through DNS
  rebinding (its own name, re-pointed at this server): the browser then treats the answers
  as that site's. Such a request carries the attacker's name in `Host`, so a name that is not
  this server's is refused (400 naming `Host`). An IP address is always accepted: rebinding
  needs a name. The accepted names: `localhost`, this machine's host name, the listen host
  when it is a name, and `[http] allowed_hosts`.
* **Body size.** Every route takes JSON only, so one limit serves them all
  (`[http] max_body_bytes`) but one: an access system's batch of up to 1,000 door events
  (`POST /api/access-events`) may take `LARGER_BODIES`' 1 MiB — when its bearer token is an
  active user's, checked here before a byte is read; anyone else meets the usual limit. A
  declared `Content-Length` over it is refused with 413 at
  once, without reading a byte; a chunked body is counted as it is read and refused as soon
  as it passes the limit. Either way the connection is closed, so the rest of the body is
  never read. FastAPI would otherwise read a whole body into memory before authentication.
* **Headers.** Every answer goes out with `X-Content-Type-Options: nosniff` and, unless its
  route chose otherwise (the web page's scripts are immutable, `/` revalidates, footage is
  `private, no-store` already), `Cache-Control: no-store`: names, holds, searches and the
  audit log must not sit in a browser's or a proxy's cache.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from functools import lru_cache

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccvault.api.context import ApiContext
from ccvault.api.errors import error_body
from ccvault.api.users import token_hash, user_for_hash

# Routes whose bodies may be larger than `[http] max_body_bytes`, for a caller with a valid
# token: 1,000 door events of ~1 KiB each at most.
LARGER_BODIES = {("POST", "/api/access-events"): 1 << 20}
SAFE_HEADERS = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))


@lru_cache(maxsize=8)
def server_names(listen_host: str, allowed: tuple[str, ...]) -> frozenset[str]:
    """The names `Host` may carry (lower case, no trailing dot)."""
    names = {"localhost", socket.gethostname().lower().rstrip("."), *allowed}
    if listen_host and not _is_address(listen_host):
        names.add(listen_host.lower().rstrip("."))
    return frozenset(names)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def host_problem(host: str | None, names: frozenset[str]) -> str | None:
    """Why a Host header does not name this server, or None when it does."""
    if not host:
        return "the request names no host (Host header)"
    name = host.strip()
    if name.startswith("["):  # an IPv6 literal, with or without a port
        return None if _is_address(name.partition("]")[0]) else f"cannot read {host!r}"
    head, _, port = name.rpartition(":")
    if head and port.isdigit():
        name = head
    if _is_address(name) or name.lower().rstrip(".") in names:
        return None
    return f"{name!r} is not a name of this server (add it to [http] allowed_hosts)"


class RequestGuard:
    """Pure ASGI middleware, first in the app (see the module docstring)."""

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        http = self.ctx.config.http
        headers = dict(_latin1(scope["headers"], (b"host", b"content-length", b"authorization")))
        problem = host_problem(
            headers.get("host"), server_names(http.host, tuple(http.allowed_hosts))
        )
        if problem is not None:
            await reply(send, 400, "bad_request", f"Host: {problem}", "Host")
            return
        limit = await self._body_limit(scope, headers.get("authorization"))
        declared = headers.get("content-length", "")
        if declared.strip().isdigit() and int(declared) > limit:
            await reply(send, 413, *too_large(limit))
            return
        body = BodyLimit(send, limit)
        await self.app(scope, body.wrap_receive(receive), body.send)

    async def _body_limit(self, scope: Scope, authorization: str | None) -> int:
        """`[http] max_body_bytes`, or a route's larger limit for a caller whose bearer token
        is an active user's (the route still checks the role)."""
        usual = self.ctx.config.http.max_body_bytes
        larger = LARGER_BODIES.get((scope["method"], scope["path"]))
        scheme, _, token = (authorization or "").partition(" ")
        if larger is None or scheme.lower() != "bearer" or not token.strip():
            return usual
        known = await run_in_threadpool(self._known_token, token.strip())
        return max(usual, larger) if known else usual

    def _known_token(self, token: str) -> bool:
        with self.ctx.reader() as conn:
            return user_for_hash(conn, token_hash(token), self.ctx.now_ms()) is not None


def _latin1(raw: Iterable[tuple[bytes, bytes]], wanted: tuple[bytes, ...]) -> list[tuple]:
    """The first value of each wanted header (a repeated Host or Content-Length is h11's
    to refuse, and it does)."""
    found: dict[bytes, bytes] = {}
    for name, value in raw:
        if name in wanted and name not in found:
            found[name] = value
    return [(k.decode(), v.decode("latin-1")) for k, v in found.items()]


def too_large(limit: int) -> tuple[str, str, str]:
    return "too_large", f"the request body is over {limit} bytes (http.max_body_bytes)", "body"


class BodyLimit:
    """Counts the body as the app reads it; past the limit, answers 413 itself, hands the app
    a disconnect and drops whatever the app then tries to send."""

    def __init__(self, send: Send, limit: int) -> None:
        self._send, self.limit = send, limit
        self.received = 0
        self.started = self.refused = False

    def wrap_receive(self, receive: Receive) -> Receive:
        async def counted() -> Message:
            message = await receive()
            if message["type"] != "http.request" or self.refused:
                return message
            self.received += len(message.get("body", b""))
            if self.received <= self.limit:
                return message
            self.refused = True
            if not self.started:
                await reply(self._send, 413, *too_large(self.limit))
            return {"type": "http.disconnect"}

        return counted

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
            have = {name.lower() for name, _ in message.get("headers", ())}
            extra = [(n, v) for n, v in SAFE_HEADERS if n not in have]
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await self._send(message)


async def reply(send: Send, status: int, code: str, message: str, field: str | None) -> None:
    """An error answered here, before the app: our error shape, and the connection closed
    (whatever the client still sends is never read)."""
    body = json.dumps(error_body(code, message, field)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *SAFE_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
