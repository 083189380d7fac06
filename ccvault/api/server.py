"""The daemon's HTTP server: uvicorn in a thread, its logs routed into our structlog events.

The listening socket is bound in `start()` itself, so a taken port is a clear start-up error
naming `http.listen` instead of a log line from a background thread and a daemon without an
API. Access lines are our own `http.request` events built from uvicorn's fields: method, path
(without the query string), status, client. Headers are never logged, so neither a bearer token
nor the session cookie can reach a log; tokens never travel in URLs by design (see `auth`).
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import ssl
import threading
import time
import traceback
from typing import Any

import structlog
import uvicorn

from ccvault.api.app import create_app
from ccvault.api.connections import DROPPED, Arrivals, Listener, RequestTimeoutProtocol
from ccvault.api.context import ApiContext
from ccvault.errors import Busy, CcvaultError, ConfigError, reason
from ccvault.host import descriptors, threads

log = structlog.get_logger("ccvault.http")

START_TIMEOUT_S = 15.0
GRACEFUL_S = 5  # open streams (a video being watched) get this long to finish on shutdown


class StructlogHandler(logging.Handler):
    """Forwards uvicorn's stdlib records as structlog events (JSON lines for journald)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            args = record.args
            if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
                client, method, path, _version, status = args
                log.info(
                    "http.request",
                    method=method,
                    path=str(path).split("?", 1)[0],
                    status=status,
                    client=client,
                )
                return
            level = (
                "error"
                if record.levelno >= logging.ERROR
                else "warning"
                if record.levelno >= logging.WARNING
                else "info"
                if record.levelno >= logging.INFO
                else "debug"
            )
            fields: dict[str, Any] = {"message": record.getMessage()}
            if record.exc_info:  # plain text: a rich traceback would print frame locals
                fields["error"] = "".join(traceback.format_exception(*record.exc_info))
            getattr(log, level)("http.server", **fields)
        except Exception:  # a logging failure must never break a request
            self.handleError(record)


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"structlog": {"()": StructlogHandler}},
    "loggers": {
        "uvicorn": {"handlers": ["structlog"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO", "propagate": True},
        "uvicorn.access": {"handlers": ["structlog"], "level": "INFO", "propagate": False},
    },
}


class ApiServer:
    """`start()` once the catalog is ready; `stop()` before the catalog writer closes."""

    def __init__(self, ctx: ApiContext) -> None:
        http = ctx.config.http
        self.listen = http.listen
        self.tls = http.tls_cert is not None
        self.app = create_app(ctx)
        self.arrivals = Arrivals()  # requests still arriving: the cap evicts the slowest
        self.config = uvicorn.Config(
            self.app,
            host=http.host,
            port=http.port,
            ssl_certfile=str(http.tls_cert) if http.tls_cert else None,
            ssl_keyfile=str(http.tls_key) if http.tls_key else None,
            log_config=LOG_CONFIG,
            access_log=True,
            lifespan="auto",
            # The peer address is the truth for audit records and the sign-in rate limit; a
            # local process must not be able to claim another one with X-Forwarded-For.
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_S,
            # Slow or silent clients are cut off (`connections`); an idle keep-alive
            # connection goes after idle_timeout_seconds.
            http=functools.partial(  # type: ignore[arg-type]
                RequestTimeoutProtocol,
                request_timeout_s=http.request_timeout_seconds,
                stall_timeout_s=http.stall_timeout_seconds,
                arrivals=self.arrivals,
            ),
            timeout_keep_alive=http.idle_timeout_seconds,  # type: ignore[arg-type]
            # No route speaks WebSocket: an upgrade must not hand a connection to a protocol
            # without these timeouts (should a WebSocket library be installed some day).
            ws="none",
        )
        self.server = uvicorn.Server(self.config)
        self.max_connections = http.max_connections
        self.per_client = http.max_connections_per_client
        self._thread: threading.Thread | None = None
        self._sock: Listener | None = None

    @property
    def url(self) -> str:
        assert self._sock is not None, "not started"
        host, port = self._sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def start(self) -> None:
        """Serve in a thread; returns once connections are accepted."""
        descriptors.check_budget(self.max_connections)
        sock = self._bind()
        try:
            self.config.load()  # reads the TLS files now, so a bad one fails start-up
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise ConfigError(
                "http.tls_cert", f"cannot use the TLS certificate/key: {reason(exc)}"
            ) from None
        self._sock = sock
        self._thread = threads.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise CcvaultError(
                    "http.listen", f"the HTTP server on {self.listen} did not start (see the log)"
                )
            time.sleep(0.01)
        log.info("http.listening", url=self.url)

    def stop(self, timeout: float = GRACEFUL_S + 5) -> None:
        """Graceful: stop accepting, let running requests finish (up to GRACEFUL_S)."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.server.force_exit = True
                self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
            self._sock.refused.flush()
        DROPPED.flush()

    def _bind(self) -> Listener:
        """A taken port is Busy (exit 5, like a second daemon); an address this host cannot
        listen on is the config's fault (exit 2)."""
        host, port = self.config.host.strip("[]"), self.config.port
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            sock = Listener(
                family,
                kind,
                proto,
                total=self.max_connections,
                per_client=self.per_client,
                tls=self.tls,
                arrivals=self.arrivals,
            )
        except OSError as exc:
            raise ConfigError(
                "http.listen", f"cannot listen on {self.listen}: {reason(exc)}"
            ) from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(self.config.backlog)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise Busy(
                    "http.listen",
                    f"cannot listen on {self.listen}: the port is taken"
                    " (another ccvault, or another program)",
                ) from None
            raise ConfigError(
                "http.listen", f"cannot listen on {self.listen}: {exc.strerror or exc}"
            ) from None
        return sock
