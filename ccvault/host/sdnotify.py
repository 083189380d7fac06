"""systemd's notify protocol, spoken directly: READY, RELOADING, STOPPING, STATUS, WATCHDOG.

The protocol is one datagram of `KEY=value` lines to the AF_UNIX socket named by
$NOTIFY_SOCKET (a leading `@` means the abstract namespace), so it needs no libsystemd. The
watchdog is only pinged while every work loop has beaten recently: a daemon whose threads are
wedged must look dead to systemd, which then restarts it (Restart=on-failure).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

import structlog

from ccvault.host import threads

log = structlog.get_logger("ccvault.host.sdnotify")


class Notifier:
    """Tells systemd how the daemon is doing; a silent no-op when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        socket_name = environ.get("NOTIFY_SOCKET", "")
        # "@name" is Linux's abstract namespace: the kernel wants a leading NUL byte instead.
        self._address = "\0" + socket_name[1:] if socket_name.startswith("@") else socket_name
        self.enabled: bool = bool(socket_name)
        self.watchdog_interval: float | None = _watchdog_interval(environ)
        self._failing = False
        self._lock = threading.Lock()

    def send(self, **fields: str) -> bool:
        """One datagram with every field; False (logged once per failure streak) if it fails.

        Never raises: a notification that cannot be sent must not take the daemon down.
        """
        if not self.enabled:
            return False
        # A newline inside a value would start a new (bogus) field: flatten it.
        message = "".join(f"{k}={str(v).replace(chr(10), ' ')}\n" for k, v in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            with self._lock:
                first, self._failing = not self._failing, True
            if first:
                log.warning(
                    "sdnotify.failed",
                    socket=self._address.replace("\0", "@"),
                    fields=sorted(fields),
                    error=str(exc),
                )
            return False
        with self._lock:
            self._failing = False
        return True

    def ready(self, status: str) -> None:
        """Start-up is done: systemd considers the unit started only now (Type=notify)."""
        self.send(READY="1", STATUS=status)

    def reloading(self) -> None:
        """A reload began; systemd ≥ 253 needs MONOTONIC_USEC to match it to `systemctl reload`
        (252 ignores both). Follow with ready() when the new config is in effect."""
        now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(RELOADING="1", MONOTONIC_USEC=str(now_us))

    def status(self, text: str) -> None:
        """Free text shown by `systemctl status`."""
        self.send(STATUS=text)

    def stopping(self) -> None:
        """Shutdown began, so systemd shows `deactivating` rather than a hang."""
        self.send(STOPPING="1")

    def start_watchdog(
        self, stale: Callable[[], list[str]], stop: threading.Event
    ) -> threading.Thread | None:
        """Ping WATCHDOG=1 every watchdog_interval seconds while stale() is empty; None when
        systemd asked for no watchdog. A stale loop withholds the ping, so systemd kills and
        restarts a daemon that is alive but no longer working."""
        if self.watchdog_interval is None:
            return None
        interval = self.watchdog_interval
        thread = threads.Thread(
            target=self._watchdog,
            args=(stale, stop, interval),
            name="sdnotify-watchdog",
            daemon=True,
        )
        thread.start()
        return thread

    def _watchdog(
        self, stale: Callable[[], list[str]], stop: threading.Event, interval: float
    ) -> None:
        withheld: list[str] = []
        while True:
            try:
                names = sorted(stale())
            except Exception as exc:  # a broken check must withhold the ping, not kill the thread
                names = [f"<check failed: {exc}>"]
            if not names:
                if withheld:
                    log.info("watchdog.resumed")
                self.send(WATCHDOG="1")
            elif names != withheld:
                log.warning("watchdog.withheld", loops=names)
            withheld = names
            if stop.wait(interval):
                return


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of WATCHDOG_USEC (systemd's advice), when the watchdog is meant for this process."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = environ.get("WATCHDOG_PID")
    # WATCHDOG_PID names the process the watchdog is for; a child inheriting it must not ping.
    if usec <= 0 or (pid is not None and pid != str(os.getpid())):
        return None
    return usec / 2 / 1e6
