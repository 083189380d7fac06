"""Alert channels against real peers on loopback: an HTTP server receiving the webhook, an SMTP
server (aiosmtpd) with STARTTLS and AUTH, and the Dispatcher's retries, ordering and stop."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import ValidationError
from structlog.testing import capture_logs

from ccvault.alerts.channels import build_channels
from ccvault.alerts.dispatcher import Dispatcher
from ccvault.alerts.email import EmailChannel, email_subject
from ccvault.alerts.model import FIRING, RESOLVED, ZERO_TIME, Alert
from ccvault.alerts.webhook import WebhookChannel
from ccvault.config.alerts import EmailConfig, WebhookConfig
from tests.peers import self_signed

pytestmark = pytest.mark.timeout(30)

TOKEN = "Bearer s3cr3t-webhook-token-42"
PASSWORD = "p4ssw0rd-never-logged"
T0 = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def firing(**labels: str) -> Alert:
    return Alert(
        name="camera_offline",
        labels=labels or {"camera": "door"},
        severity="critical",
        status=FIRING,
        summary="Camera door sends no video",
        starts_ms=T0,
        details={"last_segment": "2023-11-14T22:10:00Z"},
    )


def resolved(**labels: str) -> Alert:
    alert = firing(**labels)
    return Alert(
        name=alert.name,
        labels=alert.labels,
        severity=alert.severity,
        status=RESOLVED,
        summary=alert.summary,
        starts_ms=T0,
        ends_ms=T0 + 60_000,
        details=alert.details,
    )


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Polls until predicate() is truthy; the timeout only bounds a wait for what must happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in list(logs) if entry["event"] == name]


def returns_while(call: Callable[[], object], held: Callable[[], bool], what: str) -> None:
    """call() returns while a channel's send that the test holds is still blocked.

    No clock is read: a loaded machine cannot fail this, but a call that waits for the held
    send never returns before the test lets the send go, so it fails here. The wait is for
    the call to come back at all (generous); `held` confirms the send was still blocked.
    """
    done = threading.Event()
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            raised.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True, name="returns-while").start()
    assert done.wait(10.0), f"{what} waited for the blocked send"
    if raised:
        raise raised[0]
    assert held(), f"the send was no longer blocked when {what} returned (test setup)"


class Gated:
    """A channel whose send() first waits until the test opens `gate`; otherwise the wrapped
    channel as it is (its name and secrets included)."""

    def __init__(self, channel: Any, gate: threading.Event) -> None:
        self.channel, self.gate = channel, gate
        self.name = channel.name
        self.entered = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)

    def send(self, alert: Alert) -> None:
        self.entered.set()
        assert self.gate.wait(25.0), "the test never opened the gate"
        self.channel.send(alert)


# The worker threads each dispatcher started (for "stop() ended them").
WORKERS: weakref.WeakKeyDictionary[Dispatcher, list[threading.Thread]] = weakref.WeakKeyDictionary()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours proxy variables: loopback peers must be reached directly."""
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs() as captured:
        yield captured


@pytest.fixture
def dispatchers() -> Iterator[Callable[..., Dispatcher]]:
    """Started dispatchers, all stopped at teardown (a failed test must not leak threads)."""
    made: list[Dispatcher] = []

    def make(channels: list[Any], **kwargs: Any) -> Dispatcher:
        dispatcher = Dispatcher(channels, **kwargs)
        before = set(threading.enumerate())
        dispatcher.start()
        WORKERS[dispatcher] = [t for t in threading.enumerate() if t not in before]
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.stop(timeout=0.2)  # workers are daemon threads; peers close next


# ---- HTTP peers --------------------------------------------------------------------------


class WebhookPeer:
    """A real HTTP server; answers with `codes` in turn (the last one repeats)."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = list(codes)
        self.requests: list[dict[str, Any]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                peer.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                code = peer.codes.pop(0) if len(peer.codes) > 1 else peer.codes[0]
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentPeer:
    """Accepts TCP connections and never answers (a hung receiver)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def http_peer() -> Iterator[Callable[[list[int]], WebhookPeer]]:
    peers: list[WebhookPeer] = []

    def make(codes: list[int]) -> WebhookPeer:
        peers.append(WebhookPeer(codes))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()


@pytest.fixture
def silent_peer() -> Iterator[SilentPeer]:
    peer = SilentPeer()
    yield peer
    peer.close()


def webhook(url: str, timeout: float = 2.0) -> WebhookChannel:
    return WebhookChannel(
        WebhookConfig(url=url, timeout_seconds=timeout, headers={"Authorization": TOKEN})
    )


# ---- webhook -----------------------------------------------------------------------------


def test_webhook_sends_alertmanager_json_firing_then_resolved(http_peer, dispatchers, logs):
    peer = http_peer([200])
    dispatcher = dispatchers([webhook(peer.url)], backoff_s=0.05)
    dispatcher.submit(firing())
    dispatcher.submit(resolved())
    assert dispatcher.wait_idle(5.0) and dispatcher.pending() == {"webhook": 0}

    first, second = peer.requests
    assert first["headers"]["Authorization"] == TOKEN
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["headers"]["User-Agent"].startswith("ccvault/")
    body = first["json"]
    assert {k: body[k] for k in ("version", "status", "receiver", "externalURL")} == {
        "version": "4",
        "status": "firing",
        "receiver": "ccvault",
        "externalURL": "",
    }
    assert body["groupKey"] and body["groupLabels"] == {"alertname": "camera_offline"}
    [item] = body["alerts"]
    assert item["labels"] == {
        "alertname": "camera_offline",
        "severity": "critical",
        "instance": socket.gethostname(),
        "camera": "door",
    }
    assert item["annotations"] == {
        "summary": "Camera door sends no video",
        "last_segment": "2023-11-14T22:10:00Z",
    }
    assert body["commonLabels"] == item["labels"]
    assert body["commonAnnotations"] == item["annotations"]
    assert item["startsAt"] == "2023-11-14T22:13:20.123Z"
    assert item["endsAt"] == ZERO_TIME
    assert item["status"] == "firing" and item["generatorURL"] == ""
    assert item["fingerprint"] == firing().fingerprint

    assert second["json"]["status"] == "resolved"
    [item] = second["json"]["alerts"]
    assert item["status"] == "resolved"
    assert item["endsAt"] == "2023-11-14T22:14:20.123Z"
    assert item["fingerprint"] == first["json"]["alerts"][0]["fingerprint"]

    delivered = events(logs, "alert.delivered")
    assert [(e["channel"], e["status"], e["attempt"]) for e in delivered] == [
        ("webhook", "firing", 1),
        ("webhook", "resolved", 1),
    ]
    assert all(e["log_level"] == "info" and e["alert"] == "camera_offline" for e in delivered)


def test_webhook_500_twice_then_200_is_delivered_on_third_attempt(http_peer, dispatchers, logs):
    peer = http_peer([500, 500, 200])
    dispatcher = dispatchers([webhook(peer.url)], backoff_s=0.05)
    dispatcher.submit(firing())
    [delivered] = wait_until(lambda: events(logs, "alert.delivered"))
    assert delivered["attempt"] == 3 and len(peer.requests) == 3
    failed = events(logs, "alert.delivery_failed")
    assert [(e["attempt"], e["retry_in_s"]) for e in failed] == [(1, 0.05), (2, 0.1)]
    assert all(e["log_level"] == "warning" and "HTTP 500" in e["error"] for e in failed)
    assert "s3cr3t" not in repr(list(logs))


def test_webhook_hung_receiver_times_out_and_is_retried(silent_peer, dispatchers, logs):
    dispatcher = dispatchers([webhook(silent_peer.url, timeout=0.2)], backoff_s=0.05)
    dispatcher.submit(firing())
    failed = wait_until(
        lambda: (
            len(events(logs, "alert.delivery_failed")) >= 2
            and events(logs, "alert.delivery_failed")
        )
    )
    assert [e["attempt"] for e in failed[:2]] == [1, 2]
    assert "no answer within 0.2 s" in failed[0]["error"]
    assert len(silent_peer.connections) >= 2
    assert "s3cr3t" not in repr(list(logs))


def test_stop_interrupts_a_retry_wait_and_logs_what_is_undelivered(http_peer, dispatchers, logs):
    peer = http_peer([503])
    dispatcher = dispatchers([webhook(peer.url)], backoff_s=60)
    dispatcher.submit(firing())
    dispatcher.submit(resolved())
    wait_until(lambda: events(logs, "alert.delivery_failed"))
    # The worker now waits out a 60 s backoff. stop() must wake it: a worker left waiting
    # would still be alive when stop() gives up joining it.
    assert WORKERS[dispatcher] and all(t.is_alive() for t in WORKERS[dispatcher])
    dispatcher.stop(timeout=10.0)
    assert not any(t.is_alive() for t in WORKERS[dispatcher]), "the retry wait was not interrupted"
    undelivered = events(logs, "alert.undelivered")
    assert [(e["status"], e["attempts"]) for e in undelivered] == [("firing", 1), ("resolved", 0)]
    assert len(peer.requests) == 1


def test_submit_never_blocks_on_a_hung_channel_and_drops_the_oldest(silent_peer, dispatchers, logs):
    # The receiver never answers and the channel's timeout outlasts the test: its send stays
    # blocked until the peer is closed at teardown.
    dispatcher = dispatchers([webhook(silent_peer.url, timeout=300)], queue_size=2)
    dispatcher.submit(firing(camera="a"))
    wait_until(lambda: silent_peer.connections)  # the worker is inside send(), hung

    def hung() -> bool:
        return len(silent_peer.connections) == 1 and not events(logs, "alert.delivery_failed")

    for camera in "bcd":
        returns_while(lambda c=camera: dispatcher.submit(firing(camera=c)), hung, "submit")
    [dropped] = events(logs, "alert.dropped")
    assert dropped["labels"] == {"camera": "b"} and dropped["reason"] == "queue full"
    assert dispatcher.pending() == {"webhook": 3}
    returns_while(lambda: dispatcher.stop(timeout=0.2), hung, "stop(timeout=0.2)")
    undelivered = [e["labels"]["camera"] for e in events(logs, "alert.undelivered")]
    assert undelivered == ["a", "c", "d"]


def test_retries_give_up_after_the_window(http_peer, dispatchers, logs):
    http_peer_ = http_peer([500])
    dispatchers([webhook(http_peer_.url)], backoff_s=0.05, give_up_after_s=0.3).submit(firing())
    [given_up] = wait_until(lambda: events(logs, "alert.given_up"))
    assert given_up["log_level"] == "error" and given_up["attempts"] >= 2
    assert "s3cr3t" not in repr(list(logs))


def test_webhook_credentials_in_url_become_a_basic_header_and_are_never_logged(
    http_peer, dispatchers, logs
):
    peer = http_peer([401])
    url = peer.url.replace("http://", "http://hook:url-pa55word@")
    channel = WebhookChannel(WebhookConfig(url=url, timeout_seconds=2))
    dispatchers([channel], backoff_s=60).submit(firing())
    [failed] = wait_until(lambda: events(logs, "alert.delivery_failed"))
    assert peer.requests[0]["headers"]["Authorization"].startswith("Basic ")
    assert "HTTP 401" in failed["error"]
    assert "url-pa55word" not in repr(list(logs))


# ---- SMTP peer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("certs")
    server_cert, server_key = self_signed(directory, "server")
    other_cert, _ = self_signed(directory, "other")
    return {"cert": server_cert, "key": server_key, "other": other_cert}


class Mailbox:
    """aiosmtpd handler: keeps each accepted envelope."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == b"alerts"
            and auth_data.password == PASSWORD.encode()
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def message(self, index: int = 0) -> EmailMessage:
        content = self.envelopes[index].content
        return email.message_from_bytes(content, policy=email.policy.default)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_peer(certs: dict[str, Path]) -> Iterator[tuple[Mailbox, int]]:
    """STARTTLS required, AUTH required (and only over TLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs["cert"], certs["key"])
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=mailbox.authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield mailbox, controller.port
    controller.stop()


@pytest.fixture
def relay_peer() -> Iterator[tuple[Mailbox, int]]:
    """A plain local relay: no TLS, no AUTH."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield mailbox, controller.port
    controller.stop()


def email_config(port: int, tmp_path: Path, **overrides: Any) -> EmailConfig:
    password_file = tmp_path / "smtp-password"
    password_file.write_text(PASSWORD + "\n")
    values: dict[str, Any] = {
        "host": "localhost",
        "port": port,
        "username": "alerts",
        "password_file": password_file,
        "from": "ccvault@example.org",
        "to": ["ops@example.org", "oncall@example.org"],
        "timeout_seconds": 5,
    }
    return EmailConfig(**{**values, **overrides})


# ---- e-mail ------------------------------------------------------------------------------


def test_email_over_starttls_with_auth_arrives(smtp_peer, certs, tmp_path, dispatchers, logs):
    mailbox, port = smtp_peer
    channel = EmailChannel(email_config(port, tmp_path, ca_file=certs["cert"]))
    dispatcher = dispatchers([channel], backoff_s=0.05)
    dispatcher.submit(firing())
    dispatcher.submit(resolved())
    wait_until(lambda: len(events(logs, "alert.delivered")) == 2)

    assert mailbox.logins == ["alerts", "alerts"]
    envelope = mailbox.envelopes[0]
    assert envelope.mail_from == "ccvault@example.org"
    assert envelope.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    message = mailbox.message(0)
    assert message["Subject"] == "[ccvault FIRING critical] camera_offline camera=door"
    assert message["To"] == "ops@example.org, oncall@example.org"
    assert message["Date"] and message["Message-ID"]
    body = message.get_content()
    for text in (
        "Camera door sends no video",
        "camera = door",
        "last_segment = ",
        "2023-11-14T22:13:20.123Z",
        socket.gethostname(),
    ):
        assert text in body
    assert mailbox.message(1)["Subject"] == "[ccvault RESOLVED] camera_offline camera=door"
    assert "2023-11-14T22:14:20.123Z" in mailbox.message(1).get_content()
    assert mailbox.message(0)["Message-ID"] != mailbox.message(1)["Message-ID"]


def test_email_with_the_wrong_ca_fails_verification_and_is_retried(
    smtp_peer, certs, tmp_path, dispatchers, logs
):
    mailbox, port = smtp_peer
    gate = threading.Event()
    channel = Gated(EmailChannel(email_config(port, tmp_path, ca_file=certs["other"])), gate)
    dispatcher = dispatchers([channel], backoff_s=0.05)
    # Never raises, returns at once: while the send it queued is still held at the gate.
    returns_while(lambda: dispatcher.submit(firing()), lambda: not gate.is_set(), "submit")
    gate.set()
    failed = wait_until(
        lambda: (
            len(events(logs, "alert.delivery_failed")) >= 2
            and events(logs, "alert.delivery_failed")
        )
    )
    assert "CERTIFICATE_VERIFY_FAILED" in failed[0]["error"]
    assert failed[0]["channel"] == "email" and failed[1]["attempt"] == 2
    assert mailbox.envelopes == []
    assert PASSWORD not in repr(list(logs))


def test_email_verifies_the_host_name(smtp_peer, certs, tmp_path):
    """The certificate names localhost only: reached as 127.0.0.1 it must be refused."""
    _, port = smtp_peer
    channel = EmailChannel(email_config(port, tmp_path, host="127.0.0.1", ca_file=certs["cert"]))
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        channel.send(firing())


def test_email_wrong_password_is_logged_without_the_password(
    smtp_peer, certs, tmp_path, dispatchers, logs
):
    _, port = smtp_peer
    config = email_config(port, tmp_path, ca_file=certs["cert"])
    config.password_file.write_text("wrong-" + PASSWORD)
    dispatchers([EmailChannel(config)], backoff_s=60).submit(firing())
    [failed] = wait_until(lambda: events(logs, "alert.delivery_failed"))
    assert "SMTPAuthenticationError" in failed["error"]
    assert PASSWORD not in repr(list(logs))


def test_plain_smtp_refuses_credentials(tmp_path):
    """The config refuses a password over plain SMTP, naming the key, before anything runs."""
    with pytest.raises(ValidationError, match="starttls: a password is only sent over TLS"):
        email_config(2525, tmp_path, starttls=False)
    with pytest.raises(ValidationError, match="username: needs password_file"):
        email_config(2525, tmp_path, password_file=None)


def test_plain_smtp_to_a_local_relay(relay_peer, tmp_path):
    mailbox, port = relay_peer
    config = email_config(port, tmp_path, starttls=False, username=None, password_file=None)
    EmailChannel(config).send(firing(camera="yard"))
    assert mailbox.message()["Subject"] == "[ccvault FIRING critical] camera_offline camera=yard"


def test_a_hung_webhook_does_not_delay_email(silent_peer, relay_peer, tmp_path, dispatchers, logs):
    mailbox, port = relay_peer
    config = email_config(port, tmp_path, starttls=False, username=None, password_file=None)
    # The webhook's send stays blocked until the peer is closed at teardown.
    channels = [webhook(silent_peer.url, timeout=300), EmailChannel(config)]
    dispatcher = dispatchers(channels)
    dispatcher.submit(firing())
    [delivered] = wait_until(lambda: events(logs, "alert.delivered"))
    assert delivered["channel"] == "email" and len(mailbox.envelopes) == 1
    # Delivered while the webhook was still hung: the e-mail did not wait for it.
    assert dispatcher.pending() == {"webhook": 1, "email": 0}
    assert events(logs, "alert.delivery_failed") == [] and len(silent_peer.connections) == 1


def test_subject_stays_one_line():
    alert = firing(camera="door\r\nBcc: evil@example.org")
    assert "\n" not in email_subject(alert) and "\r" not in email_subject(alert)


def test_build_channels_from_config(tmp_path):
    from ccvault.config.alerts import AlertsConfig

    alerts = AlertsConfig(
        webhook={"url": "https://hooks.example.org/x", "headers": {"Authorization": TOKEN}},
        email={"host": "mail.example.org", "from": "a@example.org", "to": ["b@example.org"]},
    )
    assert [c.name for c in build_channels(alerts)] == ["webhook", "email"]
    assert build_channels(AlertsConfig()) == []
