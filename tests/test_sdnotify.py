"""The notify protocol against real datagram sockets, as systemd receives it."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ccvault.host.sdnotify import Notifier


class Receiver:
    """A bound AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2)

    def next(self) -> str:
        return self.sock.recv(4096).decode()

    def drain(self, seconds: float) -> list[str]:
        """Every datagram that arrives within `seconds`."""
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                got.append(self.next())
            except TimeoutError:
                break
        self.sock.settimeout(2)
        return got


def abstract_receiver() -> tuple[Receiver, str]:
    name = f"@ccvault-test-{os.getpid()}-{time.monotonic_ns()}"
    return Receiver("\0" + name[1:]), name


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Receiver, str]]:
    """(receiver, NOTIFY_SOCKET value) for a socket file and for an abstract-namespace name."""
    if request.param == "path":
        rx, name = Receiver(str(tmp_path / "notify.sock")), str(tmp_path / "notify.sock")
    else:
        rx, name = abstract_receiver()
    yield rx, name
    rx.sock.close()


def test_each_message_is_one_exact_datagram(receiver: tuple[Receiver, str]) -> None:
    rx, name = receiver
    notifier = Notifier({"NOTIFY_SOCKET": name})
    assert notifier.enabled and notifier.watchdog_interval is None
    notifier.ready("recording 2 cameras")
    assert rx.next() == "READY=1\nSTATUS=recording 2 cameras\n"
    notifier.status("camera door offline\nsince 10:00")  # a newline must not start a field
    assert rx.next() == "STATUS=camera door offline since 10:00\n"
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    lines = rx.next().splitlines()
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC" and len(lines) == 2
    assert before <= int(value) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.stopping()
    assert rx.next() == "STOPPING=1\n"
    assert notifier.send(EXTEND_TIMEOUT_USEC="5000000", STATUS="x") is True
    assert rx.next() == "EXTEND_TIMEOUT_USEC=5000000\nSTATUS=x\n"


def test_watchdog_pings_while_no_loop_is_stale_and_withholds_otherwise() -> None:
    rx, name = abstract_receiver()  # the address forms are covered above; this is about timing
    notifier = Notifier(
        {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert notifier.watchdog_interval == pytest.approx(0.1)
    # The daemon's check (Daemon._stale_loops) names loops whose heartbeat is old.
    hung: list[str] = []
    stop = threading.Event()
    with capture_logs() as logs:
        thread = notifier.start_watchdog(lambda: list(hung), stop)
        assert thread is not None and thread.daemon
        pings = rx.drain(0.55)
        assert 4 <= len(pings) <= 8 and set(pings) == {"WATCHDOG=1\n"}  # every 0.1 s
        hung.append("ingest")  # the ingest loop hangs
        rx.drain(0.15)  # a ping sent before the watchdog looked again
        assert rx.drain(0.4) == []
        hung.clear()
        assert rx.drain(0.3)  # the loop recovered: pings resume
        stop.set()
        thread.join(1)
    assert not thread.is_alive()
    rx.sock.close()
    withheld = [e for e in logs if e["event"] == "watchdog.withheld"]
    assert len(withheld) == 1, "logged once per change, not on every tick"
    assert withheld[0]["loops"] == ["ingest"] and withheld[0]["log_level"] == "warning"


@pytest.mark.parametrize(
    "environ",
    [
        {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"},  # meant for another process
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {},
    ],
)
def test_no_watchdog_unless_it_is_meant_for_this_process(environ: dict[str, str]) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "@unused", **environ})
    assert notifier.watchdog_interval is None
    assert notifier.start_watchdog(lambda: [], threading.Event()) is None
    assert Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "200000"}).watchdog_interval == 0.1


def test_a_missing_socket_fails_quietly_and_logs_once(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    with capture_logs() as logs:
        assert notifier.send(READY="1") is False
        notifier.ready("ok")
        notifier.stopping()
    assert [e["event"] for e in logs] == ["sdnotify.failed"]
    disabled = Notifier({})
    assert not disabled.enabled and disabled.send(READY="1") is False
