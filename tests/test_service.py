"""ccvault as a service, end to end: systemd's notify protocol, reload, stop, and alerts that
reach a real webhook receiver and a real SMTP server when a real camera goes away and returns.
"""

from __future__ import annotations

import calendar
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    CCVAULT,
    REPO,
    Daemon,
    cli_json,
    event_ms,
    run_cli,
    wait_for,
    write_config,
)
from tests.peers import RtspServer, WebhookReceiver, free_port

# Every test here runs the daemon for many seconds.
pytestmark = pytest.mark.slow

SEGMENT_S = 2


class Notifications:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # (CLOCK_MONOTONIC µs when read, fields); the test's own MARK= datagrams included.
        self.messages: list[tuple[int, dict[str, str]]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            self.messages.append((monotonic_us(), fields))

    def after(self, mark: int, key: str) -> list[dict[str, str]]:
        return [m for _, m in self.messages[mark:] if key in m]

    def wait(self, key: str, mark: int = 0, timeout: float = 15) -> dict[str, str]:
        return wait_for(
            lambda: next(iter(self.after(mark, key)), None),
            timeout,
            what=f"{key}= after message {mark}",
        )

    def mark(self) -> int:
        """Sends MARK= to the socket: the daemon's datagrams listed after it were sent after
        this call (one socket, in order), even those the reader has not picked up yet."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"MARK=1\n", str(self.path))
        wait_for(lambda: any("MARK" in m for _, m in self.messages), 15, what="MARK=")
        index = next(i for i, (_, m) in enumerate(self.messages) if "MARK" in m)
        del self.messages[index]
        return index

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class Mailbox:
    """aiosmtpd's handler protocol: keep each message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    yield hook
    hook.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notifications]:
    sock = Notifications(tmp_path / "notify.sock")
    yield sock
    sock.close()


def firing(status: str) -> list[str]:
    """The alerts a STATUS= line names as firing ("…; 2 alert(s) firing: a, b")."""
    _, found, names = status.partition(" alert(s) firing: ")
    return names.split(", ") if found else []


def monotonic_us() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def utc_seconds(text: str) -> float:
    """A `segments` time ("2026-03-29T01:59:58.123Z", always UTC) to epoch seconds, whole
    seconds as before; the machine's time zone and its DST play no part."""
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


def append(config: Path, text: str) -> Path:
    config.write_text(config.read_text() + "\n" + text + "\n")
    return config


def metrics(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = daemon.wait_event("http.listening", timeout=5)["url"]
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_notify_protocol_reload_and_stop(
    tmp_path: Path, notify: Notifications, daemon_factory: Callable[..., Daemon]
) -> None:
    config = write_config(tmp_path, [{"name": "one", "url": "demo://"}], segment_seconds=SEGMENT_S)
    original = config.read_text()
    daemon = daemon_factory(config, {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"})
    try:
        ready = notify.wait("READY")
        assert ready["READY"] == "1" and "cameras" in ready["STATUS"]
        daemon.wait_event("camera.state", timeout=20, camera="one", new="recording")
        mark = len(notify.messages)
        notify.wait("WATCHDOG", mark, timeout=3)  # every WATCHDOG_USEC / 2
        wait_for(
            lambda: "recording 1/1" in notify.wait("STATUS", len(notify.messages) - 1)["STATUS"],
            10,
            what="STATUS= with the camera recording",
        )

        # A good config: a second camera; the first records on, untouched.
        append(config, '[[cameras]]\nname = "two"\nurl = "demo://"')
        mark = len(notify.messages)
        sent_us = monotonic_us()
        daemon.proc.send_signal(signal.SIGHUP)
        reloading = notify.wait("RELOADING", mark)
        # CLOCK_MONOTONIC of the moment the reload began: after the signal, before it arrived.
        [read_us] = [at for at, m in notify.messages[mark:] if m is reloading]
        assert sent_us <= int(reloading["MONOTONIC_USEC"]) <= read_us
        notify.wait("READY", mark)
        order = [k for _, m in notify.messages[mark:] for k in m if k in ("RELOADING", "READY")]
        assert order[:2] == ["RELOADING", "READY"], "RELOADING=1 comes before READY=1"
        reloaded = daemon.wait_event("config.reloaded", timeout=10)
        assert reloaded["cameras_added"] == ["two"] and reloaded["cameras_changed"] == []
        daemon.wait_event("camera.state", timeout=20, camera="two", new="recording")
        assert daemon.count("recorder.started", camera="one") == 1, "camera one was not cut"
        audit = cli_json(config, "audit", "list", "--action", "config.reload")
        assert audit[-1]["details"]["cameras_added"] == ["two"]

        # A bad config: rejected whole, the running one kept, config_rejected raised.
        good = config.read_text()
        config.write_text(original.replace("[recording]", "[recording]\nsegment_secs = 5"))
        mark = len(notify.messages)
        daemon.proc.send_signal(signal.SIGHUP)
        notify.wait("RELOADING", mark)
        notify.wait("READY", mark)
        rejected = daemon.wait_event("config.rejected", timeout=10)
        assert "recording.segment_secs" in rejected["error"] and str(config) in rejected["error"]
        config.write_text(good)  # for the CLI below; the daemon has not read it again
        events = cli_json(config, "alerts")["recent"]
        assert [e["name"] for e in events if e["event"]] == ["config_rejected"]
        rejected_ms = event_ms(rejected)
        for camera in ("one", "two"):
            wait_for(
                lambda c=camera: [
                    s
                    for s in cli_json(
                        config, "segments", "--camera", c, "--from", "-1h", "--to", "now"
                    )
                    if s["start_ms"] >= rejected_ms
                ],
                30,
                what=f"{camera} records on after the rejected reload (a segment begun since)",
            )
        assert daemon.count("recorder.started", camera="one") == 1
        assert daemon.count("recorder.started", camera="two") == 1

        # SIGUSR1: every thread's stack on stderr (the journal), and the daemon runs on.
        mark = len(daemon.raw)
        daemon.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: "in _serve" in "".join(daemon.raw[mark:]), 10, what="the stacks")
        stacks = "".join(daemon.raw[mark:])
        assert stacks.count("(most recent call first)") >= 5, stacks  # supervisor, ingest, …
        beat = len(notify.messages)
        notify.wait("WATCHDOG", beat, timeout=3)  # still alive and making progress

        # SIGTERM: open segments are closed early and ingested; exit 0 well within 30 s: no
        # wait of the shutdown ran into its time limit (a recorder killed after its grace is
        # the one that would).
        mark = len(notify.messages)
        stopped_at = time.time()
        assert daemon.stop(timeout=30) == 0
        exited_at = time.time()
        assert daemon.count("recorder.kill") == 0, "every ffmpeg closed within its grace"
        notify.wait("STOPPING", mark)  # sent before the exit, so already on its way
        for camera in ("one", "two"):
            last = cli_json(config, "segments", "--camera", camera, "--from", "-1h", "--to", "now")[
                -1
            ]
            end = utc_seconds(last["end"])
            # The segment open at the SIGTERM: closed after it, before the exit.
            assert stopped_at - (SEGMENT_S + 1.5) < end <= exited_at, (
                f"{camera}'s open segment was kept",
                end - stopped_at,
                exited_at - stopped_at,
            )
    finally:
        daemon.stop()


def test_camera_offline_and_back_reaches_webhook_email_and_metrics(
    tmp_path: Path,
    webhook: WebhookReceiver,
    mailbox: tuple[Mailbox, int],
    daemon_factory: Callable[..., Daemon],
) -> None:
    box, smtp_port = mailbox
    server = RtspServer().start()
    try:
        config = write_config(
            tmp_path,
            [{"name": "door", "url": server.url()}],
            segment_seconds=SEGMENT_S,
            offline_after=5,
        )
        text = config.read_text().replace(
            'listen = "127.0.0.1:0"', 'listen = "127.0.0.1:0"\nmetrics_public = true'
        )
        config.write_text(text)
        append(
            config,
            f"""[alerts]
check_seconds = 1
clock_sync = "off"  # the test host may have no time sync at all: clock_unchecked is not asked

[alerts.webhook]
url = "{webhook.url}"
headers = {{ Authorization = "Bearer hook-secret" }}

[alerts.email]
host = "127.0.0.1"
port = {smtp_port}
starttls = false
from = "ccvault@example.org"
to = ["security@example.org"]""",
        )
        daemon = daemon_factory(config)
        daemon.wait_event("camera.state", timeout=20, camera="door", new="recording")
        wait_for(
            lambda: metrics(daemon).get(("ccvault_segments_written_total", (("camera", "door"),))),
            20,
            what="a segment",
        )
        wait_for(
            lambda: metrics(daemon)[("ccvault_camera_up", (("camera", "door"),))] == 1,
            5,
            what="camera_up 1 at the next health check",
        )
        wait_for(
            lambda: ("ccvault_volume_headroom_seconds", (("volume", "hot"),)) in metrics(daemon),
            15,
            what="headroom once a write rate is known",
        )

        server.stop()
        [(_, fired)] = wait_for(
            lambda: webhook.alerts("camera_offline", "firing"),
            20,
            what="camera_offline firing at the webhook",
        )
        assert fired["labels"] == {
            "alertname": "camera_offline",
            "severity": "critical",
            "camera": "door",
            "instance": socket.gethostname(),
        }
        assert fired["endsAt"] == "0001-01-01T00:00:00Z"
        assert webhook.received[0][1] == "Bearer hook-secret"
        wait_for(
            lambda: any("FIRING" in s and "camera_offline" in s for s in box.subjects()),
            10,
            what="the firing e-mail",
        )
        down = metrics(daemon)  # the gauges come from the same check that fired the alert
        assert down[("ccvault_camera_up", (("camera", "door"),))] == 0
        assert down[("ccvault_alert_firing", (("alert", "camera_offline"),))] == 1
        active = cli_json(config, "alerts")["active"]
        assert [(a["name"], a["labels"]) for a in active] == [
            ("camera_offline", {"camera": "door"})
        ]
        assert run_cli(config, "alerts").returncode == 1, "exit 1 while an alert fires"

        server.start()
        [(_, resolved)] = wait_for(
            lambda: webhook.alerts("camera_offline", "resolved"),
            40,
            what="camera_offline resolved at the webhook",
        )
        assert resolved["startsAt"] == fired["startsAt"] and resolved["endsAt"] > fired["startsAt"]
        wait_for(
            lambda: any("RESOLVED" in s for s in box.subjects()), 10, what="the resolved e-mail"
        )
        assert len(webhook.alerts("camera_offline", "firing")) == 1, "no re-send meanwhile"
        report = cli_json(config, "alerts")
        assert report["active"] == [] and report["recent"][0]["name"] == "camera_offline"
        assert report["recent"][0]["status"] == "resolved"
        assert metrics(daemon)[("ccvault_alert_firing", (("alert", "camera_offline"),))] == 0
        assert "hook-secret" not in "".join(daemon.raw)
        assert daemon.stop() == 0
    finally:
        server.stop()


def test_volume_losing_its_identity_is_unavailable_within_a_check(
    tmp_path: Path,
    webhook: WebhookReceiver,
    notify: Notifications,
    daemon_factory: Callable[..., Daemon],
) -> None:
    config = write_config(tmp_path, [{"name": "one", "url": "demo://"}], segment_seconds=SEGMENT_S)
    append(config, f'[alerts]\ncheck_seconds = 1\n\n[alerts.webhook]\nurl = "{webhook.url}"')
    # Each health check ends with a STATUS= line (systemd's), which counts the checks.
    daemon = daemon_factory(config, {"NOTIFY_SOCKET": str(notify.path)})
    try:
        daemon.wait_event("camera.state", timeout=20, camera="one", new="recording")
        identity = tmp_path / "hot" / ".ccvault-volume.json"
        assert identity.exists()
        os.rename(identity, identity.with_suffix(".moved"))
        mark = notify.mark()
        [(_, alert)] = wait_for(
            lambda: webhook.alerts("volume_unavailable", "firing"),
            30,
            what="volume_unavailable at the webhook",
        )
        # Within one check interval: checks run one at a time, so after the mark at most one
        # check that looked before the rename reports; the next one raises the alert.
        checks = [m["STATUS"] for m in notify.after(mark, "STATUS")]
        raised = [i for i, line in enumerate(checks) if "volume_unavailable" in firing(line)]
        assert raised and raised[0] <= 1, ("raised by the first check after the rename", checks)
        assert alert["labels"]["volume"] == "hot" and alert["labels"]["severity"] == "critical"
        assert "identity" in alert["annotations"]["summary"]
        os.rename(identity.with_suffix(".moved"), identity)
        wait_for(
            lambda: webhook.alerts("volume_unavailable", "resolved"),
            10,
            what="volume_unavailable resolved when the identity is back",
        )
    finally:
        assert daemon.stop() == 0


def test_sigterm_has_ffmpeg_close_each_open_segment_itself(
    tmp_path: Path, daemon_factory: Callable[..., Daemon]
) -> None:
    """Mid-segment, every recorder's open segment is closed and listed by ffmpeg (one SIGINT
    each), not cut off and salvaged by ingest up to its last keyframe."""
    cameras = [{"name": f"cam{i}", "url": "demo://"} for i in range(3)]
    config = write_config(tmp_path, cameras, segment_seconds=10)
    daemon = daemon_factory(config)
    try:
        for cam in cameras:
            daemon.wait_event("segment.ingested", timeout=30, camera=cam["name"])
        wait_for(
            lambda: all(4 <= open_segment_age(daemon, cam["name"]) <= 7 for cam in cameras),
            60,
            interval=0.1,
            what="every camera 4 s into its open 10 s segment",
        )
        signalled = time.time()
        assert daemon.stop(timeout=30) == 0
        exited = time.time()
        assert daemon.count("segment.salvaged") == 0, "ffmpeg closed every segment itself"
        for cam in cameras:
            last = cli_json(
                config, "segments", "--camera", cam["name"], "--from", "-1h", "--to", "now"
            )[-1]
            end = utc_seconds(last["end"])
            # Closed at the SIGTERM (not at the segment before), before the exit.
            assert signalled - 2.5 < end <= exited, (
                f"{cam['name']}'s open segment was kept whole",
                end - signalled,
                exited - signalled,
            )
    finally:
        daemon.stop()


def open_segment_age(daemon: Daemon, camera: str) -> float:
    """Seconds since the camera's open segment began: since the end of its last ingested one
    (large while a closed segment is not ingested yet)."""
    last = max(
        (
            e
            for e in list(daemon.events)
            if e.get("event") == "segment.ingested" and e.get("camera") == camera
        ),
        key=lambda e: e["start_ms"],
    )
    return time.time() - (last["start_ms"] + last["duration_ms"]) / 1000


def test_a_log_reader_going_away_stops_nothing(tmp_path: Path) -> None:
    """journald restarted, a terminal closed: the daemon's stdout breaks (EPIPE). Logging must
    not raise into what logged, so it records on, and a SIGTERM still ends it cleanly."""
    config = write_config(tmp_path, [{"name": "one", "url": "demo://"}], segment_seconds=SEGMENT_S)
    proc = subprocess.Popen(
        [*CCVAULT, "--config", str(config), "run"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if '"daemon.ready"' in line:
                break
        proc.stdout.close()  # the reader is gone; every log line now meets a broken pipe
        # Two: the second is ingested after the first one's log line met the broken pipe.
        recorded = wait_for(
            lambda: [
                found
                for found in [
                    cli_json(config, "segments", "--camera", "one", "--from", "-1h", "--to", "now")
                ]
                if len(found) >= 2
            ],
            60,
            what="segments recorded with nobody reading the log",
        )[0]
        assert len(recorded) >= 1, "it recorded with nobody reading its log"
        assert proc.poll() is None, "still running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


SIGNAL_INSIDE_A_LOG_LINE = """
import os, signal, sys
from pathlib import Path
import structlog
from ccvault.config.loading import load
from ccvault.host import logs
from ccvault.service.daemon import Daemon

class SignalledWhileWriting:
    # The log's stream: SIGTERM arrives while the first line is being written, so the handler
    # runs on this thread inside the log call, with structlog's write lock held.
    sent = False
    def write(self, text):
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return sys.stdout.write(text)
    def flush(self):
        sys.stdout.flush()
    def isatty(self):
        return False

logs.configure(stream=SignalledWhileWriting(), json=True)
daemon = Daemon(load(Path(sys.argv[1])))
daemon._install_signals()
structlog.get_logger("ccvault.test").info("test.line")
print("stopping" if daemon.stopping.is_set() else "not stopping", flush=True)
"""


def test_a_signal_the_kernel_gives_another_thread_is_heard(
    tmp_path: Path, daemon_factory: Callable[..., Daemon]
) -> None:
    """A signal sent to the daemon (systemd's SIGTERM, an operator's SIGHUP) may be delivered
    to any of its threads. Python runs the handler on the main thread, once that thread runs
    Python again: one blocked in a wait without end never did, and the daemon ignored the
    stop until systemd killed it, its open segments lost with it. Sent here to one thread
    other than the main one at a time, so that only the main thread's wait can hear it."""
    config = write_config(tmp_path, [{"name": "one", "url": "demo://"}])
    daemon = daemon_factory(config)
    daemon.wait_event("camera.state", timeout=20, camera="one", new="recording")
    pid = daemon.proc.pid
    threads = {
        (Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()): int(tid)
        for tid in os.listdir(f"/proc/{pid}/task")
    }
    libc = ctypes.CDLL(None, use_errno=True)

    assert libc.tgkill(pid, threads["scrub"], signal.SIGHUP) == 0
    daemon.wait_event("config.reloaded", timeout=20)
    assert libc.tgkill(pid, threads["ingest"], signal.SIGTERM) == 0
    assert daemon.wait_exit(30) == 0
    assert daemon.count("daemon.signal", signal="SIGTERM") == 1
    assert daemon.count("recorder.kill") == 0, "its ffmpeg closed the open segment"


def test_a_stop_signal_inside_a_log_line_stops_the_daemon(tmp_path: Path) -> None:
    """SIGTERM can arrive while the main thread writes a log line (start-up, a reload): the
    handler then runs inside that call. A handler that logged would wait forever for the
    writer's lock it is itself holding, and the daemon would hang until systemd killed it,
    its open segments lost. It must only note the stop."""
    config = write_config(tmp_path, [{"name": "one", "url": "demo://"}])
    result = subprocess.run(
        [CCVAULT[0], "-c", SIGNAL_INSIDE_A_LOG_LINE, str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,  # the old handler never returned
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "stopping", result.stdout
    assert '"test.line"' in result.stdout
