"""Who may hold a connection, and for how long: the HTTP server cannot be starved.

Uvicorn bounds a request's header size but not how long headers may take, nor how many
connections may be open: 2,000 clients sending a header byte now and then would hold 2,000
descriptors for ever, and ingest, which opens files all the time, would fail for want of one.
Two guards close that:

* `Listener`, the listening socket itself: its `accept()` closes a connection past
  `max_connections_per_client` for its address (an IPv6 /64) at once. At `[http]
  max_connections` it makes way for the newcomer (`Arrivals.make_way`) by closing a
  connection whose request is still arriving — one of the client holding the most
  connections, if that is more than twice what the newcomer's client holds, else (for a
  client holding none) the one arriving longest if over `EVICT_AFTER_S`; with neither, the
  newcomer is closed. So slow
  connections from many addresses cannot keep a prompt client out: under pressure each
  address gets about its share. Counting at accept covers TLS connections still in their
  handshake too, which a protocol never sees. Asyncio calls `accept()` on the very socket
  object it is given.
* `RequestTimeoutProtocol`, uvicorn's h11 protocol (passed as `Config(http=...)`): a request's
  headers and body must arrive within `request_timeout_seconds` of its first byte — or of the
  connection, for the first request — however slowly bytes trickle in. An idle keep-alive
  connection is uvicorn's own `timeout_keep_alive`. The other way round, a client that
  takes none of an answer for `stall_timeout_seconds` (asyncio has paused writing to it all
  that time: its receive window and our buffers are full) is aborted: a download, a segment
  or a live stream to a reader that stopped would otherwise hold its connection, its open
  file and the task sending it for ever. One guard for every route, at the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import threading
import time
from collections import Counter
from typing import Any

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

log = structlog.get_logger("ccvault.http")

REFUSE_BATCH = 64  # refusals per accept() call before asyncio gets the loop back
EVICT_AFTER_S = 2.0  # at the cap, a request still arriving after this long makes way
EVICT_SLACK = 64  # evicted connections still closing (on the loop's next turn) at most
REPORT_EVERY_S = 10.0  # refusals and timeouts are logged as counts, not a line each
BUSY_BODY = b'{"error":{"code":"busy","message":"too many connections; retry later","field":null}}'
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 5\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
    % (len(BUSY_BODY), BUSY_BODY)
)
TIMEOUT_BODY = b'{"error":{"code":"timeout","message":"the request came too slowly","field":null}}'
TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(TIMEOUT_BODY), TIMEOUT_BODY)
)


class Tally:
    """Counts an event by reason and logs the counts at most every REPORT_EVERY_S: a flood of
    refused connections must not become a flood of log lines."""

    def __init__(self, event: str) -> None:
        self.event = event
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._last = 0.0

    def add(self, reason: str) -> None:
        with self._lock:
            self.counts[reason] += 1
            if time.monotonic() - self._last < REPORT_EVERY_S:
                return
        self.flush()

    def flush(self) -> None:
        """Log what was counted since the last line (the server does at its stop)."""
        with self._lock:
            counts, self.counts, self._last = dict(self.counts), Counter(), time.monotonic()
        if counts:
            log.warning(self.event, **counts)


def client_key(addr: Any) -> str:
    """What the per-client cap and the sign-in limits count by: the IPv4 address, or the IPv6
    /64 (one host's allocation: a client must not get a fresh share per address it picks)."""
    host = addr[0] if isinstance(addr, tuple) else str(addr)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip.exploded}/64", strict=False))
    return str(ip)


class Arrivals:
    """Connections whose request is still arriving, by client, oldest first. Used on the event
    loop's thread only (by the protocols and by the listener's accept): no lock needed."""

    def __init__(self) -> None:
        # client key → {protocol: since}; insertion order: oldest first
        self._by_client: dict[str, dict[RequestTimeoutProtocol, float]] = {}

    def begin(self, proto: RequestTimeoutProtocol) -> None:
        self._by_client.setdefault(proto.client_key, {}).setdefault(proto, time.monotonic())

    def end(self, proto: RequestTimeoutProtocol) -> None:
        mine = self._by_client.get(proto.client_key)
        if mine is not None and mine.pop(proto, None) is not None and not mine:
            del self._by_client[proto.client_key]

    def make_way(self, newcomer: str, held: Counter[str]) -> int | None:
        """Close one arriving connection for a newcomer from client `newcomer` (`held`:
        each client's open connections); returns the closed one's descriptor, or None.
        First choice: the oldest of the client holding most, if it holds more than twice
        what the newcomer's does; else, for a client holding none, the one arriving longest,
        if for over EVICT_AFTER_S. Clients with about their share never churn each other out:
        an attacker's reconnects would otherwise keep every slot young."""
        busiest = max(self._by_client, key=lambda k: held[k], default=None)
        if busiest is not None and held[busiest] > 2 * held[newcomer] + 1:
            return self._evict(next(iter(self._by_client[busiest])))
        if held[newcomer]:
            return None
        oldest = min(
            (next(iter(mine.items())) for mine in self._by_client.values()),
            key=lambda item: item[1],
            default=None,
        )
        if oldest is not None and time.monotonic() - oldest[1] >= EVICT_AFTER_S:
            return self._evict(oldest[0])
        return None

    def _evict(self, proto: RequestTimeoutProtocol) -> int:
        self.end(proto)
        proto.evict()
        return proto.fd


class Listener(socket.socket):
    """A listening socket whose accept() keeps within the connection caps (see the module)."""

    def __init__(
        self,
        family: int,
        kind: int,
        proto: int,
        *,
        total: int,
        per_client: int,
        tls: bool,
        arrivals: Arrivals,
    ) -> None:
        super().__init__(family, kind, proto)
        self.total, self.per_client, self.tls = total, per_client, tls
        self.arrivals = arrivals
        self._open: dict[socket.socket, tuple[str, int]] = {}  # counted: → client key, fd
        self._by_fd: dict[int, socket.socket] = {}
        self._leaving: set[socket.socket] = set()  # evicted, closing on the loop's next turn
        self._per_key: Counter[str] = Counter()
        self.refused = Tally("http.connections_refused")

    def accept(self) -> tuple[socket.socket, Any]:
        """The next connection within the caps; others are closed as they come. Raises
        BlockingIOError when none is waiting, ConnectionAbortedError after a batch of
        refusals (asyncio takes both as "nothing more now" and calls again next turn)."""
        for _ in range(REFUSE_BATCH):
            conn, addr = super().accept()
            reason = self._admit(conn, client_key(addr))
            if reason is None:
                return conn, addr
            self._refuse(conn, reason)
        raise ConnectionAbortedError("connections past the cap were closed")

    def _admit(self, conn: socket.socket, key: str) -> str | None:
        if len(self._open) >= self.total or self._per_key[key] >= self.per_client:
            self._prune()  # counts include connections closed since: recount first
        if self._per_key[key] >= self.per_client:
            return "per_client"
        if len(self._open) >= self.total:
            if len(self._leaving) >= EVICT_SLACK:
                return "total"  # descriptors stay bounded: total + EVICT_SLACK at most
            victim = self.arrivals.make_way(key, self._per_key)
            if victim is None:
                return "total"
            self._forget(self._by_fd.get(victim), leaving=True)
        fd = conn.fileno()
        self._open[conn] = (key, fd)
        self._by_fd[fd] = conn
        self._per_key[key] += 1
        return None

    def _prune(self) -> None:
        """Forget connections asyncio has closed (a closed socket's fileno() is -1)."""
        self._leaving = {s for s in self._leaving if s.fileno() != -1}
        for s in [s for s in self._open if s.fileno() == -1]:
            self._forget(s, leaving=False)

    def _forget(self, sock: socket.socket | None, leaving: bool) -> None:
        """Stop counting a connection: closed, or (`leaving`) evicted and closing."""
        if sock is None or sock not in self._open:
            return
        key, fd = self._open.pop(sock)
        if self._by_fd.get(fd) is sock:
            del self._by_fd[fd]
        self._per_key[key] -= 1
        if not self._per_key[key]:
            del self._per_key[key]
        if leaving:
            self._leaving.add(sock)

    def _refuse(self, conn: socket.socket, reason: str) -> None:
        """Close at once; a plain-HTTP client is told why first (503, Retry-After)."""
        self.refused.add(reason)
        try:
            if not self.tls:
                conn.setblocking(False)
                conn.send(BUSY)
        except OSError:
            pass
        finally:
            conn.close()


DROPPED = Tally("http.connections_dropped")  # by reason: headers, body, evicted, stalled


def reset(transport: asyncio.BaseTransport) -> None:
    """End a connection at once with a reset, unsent bytes discarded here and in the kernel: a
    plain abort closes the socket, but the kernel goes on offering its full send buffer (up
    to MiBs) to a client whose window stays shut, for minutes — memory a few stalled clients
    could pin."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# In each request's scope["state"]: a callable that ends its connection at once, unsent bytes
# discarded. A response to a client that stopped reading (a live viewer dropped) needs it: a
# close() waits for the buffered bytes to go out, which a stalled client never lets happen.
ABORT = "ccvault.abort_connection"


class RequestTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request's headers and body."""

    def __init__(
        self,
        *args: Any,
        request_timeout_s: float,
        stall_timeout_s: float,
        arrivals: Arrivals,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout_s = request_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self._stall: asyncio.TimerHandle | None = None
        self.arrivals = arrivals
        self.client_key = "unknown"
        self.fd = -1
        self._deadline: asyncio.TimerHandle | None = None
        self._between_requests = False  # idle after a response: uvicorn's keep-alive timer

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app_state = {**self.app_state, ABORT: lambda: reset(transport)}  # into each scope
        self.client_key = client_key(self.client) if self.client else "unknown"
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1  # the listener's key for it
        self._watch()  # the first request must come, too: a silent connection holds a descriptor

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._between_requests = True
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._unstall()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The client takes nothing more for now: it has stall_timeout_s to take some."""
        super().pause_writing()
        if self._stall is None:
            self._stall = self.loop.call_later(self.stall_timeout_s, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._unstall()

    def _unstall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _stalled(self) -> None:
        """Aborted, not closed: a close waits for the buffered bytes to go out, which a
        stalled client never lets happen."""
        self._stall = None
        DROPPED.add("stalled")
        reset(self.transport)

    def _arriving(self) -> bool:
        """A request is on its way: headers begun but not complete, or a body unfinished."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            return True
        if state is not h11.IDLE:
            return False
        return not self._between_requests or bool(self.conn.trailing_data[0])

    def _watch(self) -> None:
        if self.transport.is_closing() or not self._arriving():
            self._cancel()
        elif self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout_s, self._expired)
            self.arrivals.begin(self)

    def _cancel(self) -> None:
        self.arrivals.end(self)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        self._drop("headers" if self.conn.their_state is h11.IDLE else "body", TIMEOUT)

    def evict(self) -> None:
        """Make way for a newcomer at the connection cap (`Arrivals.make_way`)."""
        self._cancel()
        self._drop("evicted", BUSY)

    def _drop(self, reason: str, answer: bytes) -> None:
        self.arrivals.end(self)
        if self.transport.is_closing():
            return
        DROPPED.add(reason)
        if self.conn.our_state is h11.IDLE:  # no response begun: say why before closing
            self.transport.write(answer)
        self.transport.close()
