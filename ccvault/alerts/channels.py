"""Channels that carry an Alert to people (webhook, e-mail), and the Dispatcher that feeds them.

The alert state machine decides *what* to say; this module only delivers it. Delivery must never
hold up the caller (the daemon's check loop): `Dispatcher.submit` only appends to a bounded
per-channel queue, and one worker thread per channel sends in order, retrying with backoff, so
a slow or dead SMTP server cannot delay the webhook, nor the webhook the e-mail.
"""

from __future__ import annotations

import base64
import collections
import email.utils
import json
import re
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol

import structlog

from ccvault import __version__
from ccvault.alerts.model import FIRING, Alert
from ccvault.config.alerts import AlertsBase, EmailConfig, WebhookConfig
from ccvault.host.logs import MASK, REDACTOR
from ccvault.timefmt import utc_text

log = structlog.get_logger("ccvault.alerts")

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt while an alert is still firing
USER_AGENT = f"ccvault/{__version__}"
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class Channel(Protocol):
    """Something that delivers one alert now, or raises: the Dispatcher owns the retries."""

    name: str

    def send(self, alert: Alert) -> None: ...


def hostname() -> str:
    """The `instance` label and the mail's host line: which ccvault box is speaking."""
    return socket.gethostname()


def secrets_of(channel: object) -> tuple[str, ...]:
    """The strings a channel's errors must never show (optional `secrets` attribute)."""
    return tuple(s for s in getattr(channel, "secrets", ()) if s)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Masks secrets in an error text: log lines outlive the config's file permissions."""
    for secret in secrets:
        if len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text


# ---- webhook -----------------------------------------------------------------------------


def alertmanager_payload(alert: Alert, instance: str) -> dict[str, Any]:
    """The JSON Alertmanager's webhook receiver sends (version 4), for one alert, so any
    receiver written for Alertmanager (ntfy, Matrix/Slack bridges, PagerDuty…) reads it."""
    labels = {"alertname": alert.name, "severity": alert.severity, "instance": instance,
              **alert.labels}
    annotations = {"summary": alert.summary, **alert.details}
    item = {
        "status": alert.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": utc_text(alert.starts_ms),
        "endsAt": ZERO_TIME if alert.ends_ms is None else utc_text(alert.ends_ms),
        "generatorURL": "",
        "fingerprint": alert.fingerprint,
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alert.name}"}}',
        "truncatedAlerts": 0,
        "status": alert.status,
        "receiver": "ccvault",
        "groupLabels": {"alertname": alert.name},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [item],
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would re-send the Authorization header to wherever the Location points
    (and turn the POST into a GET): treat any 3xx as a failed delivery instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookChannel:
    """POSTs Alertmanager-style JSON to one URL. Headers (often a bearer token) are never
    logged; a user:password in the URL becomes a Basic Authorization header."""

    name = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        self.timeout = float(config.timeout_seconds)
        self.url, userinfo_header, url_secrets = _split_userinfo(config.url)
        self.headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                        **userinfo_header, **dict(config.headers)}
        # A whole "Bearer <token>" value, and the token alone.
        values = [v for v in config.headers.values() if v]
        self.secrets = (*url_secrets, *values, *(v.split()[-1] for v in values if v.split()))
        self.instance = hostname()
        # stdlib urllib.request: httpx is only a test dependency, and one small POST needs
        # no client pool. Environment proxies are honoured; redirects are not followed.
        self._opener = urllib.request.build_opener(_NoRedirect)

    def send(self, alert: Alert) -> None:
        """One POST; raises on a connection error, a timeout or a non-2xx answer."""
        body = json.dumps(alertmanager_payload(alert, self.instance)).encode()
        request = urllib.request.Request(self.url, data=body, headers=self.headers,
                                         method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65_536)
                status = response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            raise WebhookError(f"HTTP {exc.code} {exc.reason}"
                               + (" (redirects are not followed)"
                                  if 300 <= exc.code < 400 else "")) from None
        except urllib.error.URLError as exc:
            raise WebhookError(f"cannot reach the webhook: {exc.reason}") from None
        except TimeoutError:
            raise WebhookError(f"no answer within {self.timeout:g} s") from None
        if not 200 <= status < 300:
            raise WebhookError(f"HTTP {status}")


class WebhookError(OSError):
    """A failed webhook delivery; the text names no header, URL credential or body."""


def _split_userinfo(url: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """urllib cannot send `https://user:pw@host/`: strip the userinfo into a Basic header."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}, ()
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    netloc = parts.netloc.rpartition("@")[2]
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    clean = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return clean, {"Authorization": f"Basic {token}"}, (password, token)


# ---- e-mail ------------------------------------------------------------------------------


class EmailChannel:
    """Sends one plain-text mail per notification over SMTP: STARTTLS with certificate and
    host-name verification, or plain SMTP to a local relay (then never with credentials)."""

    name = "email"

    def __init__(self, config: EmailConfig) -> None:
        self.config = config
        self.instance = hostname()

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password, read lazily: a missing file must fail delivery, not the caller."""
        try:
            password = self.config.password()
        except OSError:
            return ()
        return (password,) if password else ()

    def send(self, alert: Alert) -> None:
        """One SMTP session for one message; raises on any failure (TLS, auth, refusal).
        EmailConfig has refused a password without STARTTLS, and a user without a password."""
        message = self.message(alert)
        config = self.config
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds) as smtp:
            if config.starttls:
                smtp.starttls(context=self._tls_context())
            if config.username:
                smtp.login(config.username, config.password() or "")
            smtp.send_message(message)

    def _tls_context(self) -> ssl.SSLContext:
        """System CAs plus the configured one; hostname checking stays on (the default)."""
        context = ssl.create_default_context()
        if self.config.ca_file is not None:
            context.load_verify_locations(cafile=str(self.config.ca_file))
        return context

    def message(self, alert: Alert) -> EmailMessage:
        """Subject for the inbox list, body with everything the webhook JSON carries."""
        message = EmailMessage()
        message["Subject"] = email_subject(alert)
        message["From"] = self.config.sender
        message["To"] = ", ".join(self.config.to)
        message["Date"] = email.utils.format_datetime(datetime.now(UTC))
        message["Message-ID"] = email.utils.make_msgid("ccvault", domain=_msgid_domain())
        message.set_content(email_body(alert, self.instance))
        return message


def email_subject(alert: Alert) -> str:
    """`[ccvault FIRING critical] camera_offline camera=door`; one line, whatever the labels."""
    state = f"FIRING {alert.severity}" if alert.status == FIRING else "RESOLVED"
    labels = " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    return CONTROL.sub(" ", f"[ccvault {state}] {alert.name} {labels}".strip())


def email_body(alert: Alert, instance: str) -> str:
    lines = [alert.summary, "", f"alert:    {alert.name}", f"status:   {alert.status}",
             f"severity: {alert.severity}", f"host:     {instance}",
             f"started:  {utc_text(alert.starts_ms)}"]
    if alert.ends_ms is not None:
        lines.append(f"ended:    {utc_text(alert.ends_ms)}")
    lines += _section("labels", alert.labels) + _section("details", alert.details)
    lines += ["", f"fingerprint: {alert.fingerprint}", f"-- {USER_AGENT} on {instance}"]
    return "\n".join(lines) + "\n"


def _section(title: str, values: dict[str, str]) -> list[str]:
    if not values:
        return []
    return ["", f"{title}:", *(f"  {k} = {v}" for k, v in sorted(values.items()))]


def _msgid_domain() -> str:
    """make_msgid's default calls getfqdn(), which can block on DNS: use the plain name."""
    name = re.sub(r"[^A-Za-z0-9.-]", "-", hostname()) or "localhost"
    return name


# ---- dispatcher --------------------------------------------------------------------------


@dataclass
class _Item:
    alert: Alert
    submitted: float  # time.monotonic()
    attempt: int = 0


@dataclass
class _Worker:
    """One channel's queue and thread; `head` is the notification being sent or retried."""

    channel: Channel
    queue: collections.deque[_Item] = field(default_factory=collections.deque)
    head: _Item | None = None
    thread: threading.Thread | None = None


class Dispatcher:
    """Bounded queue + worker thread per channel: submit() never blocks, order per channel
    is kept (a resolved never overtakes its firing), failures are retried with backoff."""

    def __init__(self, channels: list[Channel], *, backoff_s: float = 2.0,
                 max_backoff_s: float = 300.0, give_up_after_s: float = 3600.0,
                 queue_size: int = 1000) -> None:
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.give_up_after_s = give_up_after_s
        self.queue_size = max(1, queue_size)
        self._workers = [_Worker(channel) for channel in channels]
        self._cond = threading.Condition()
        self._stopping = False
        self._started = False

    @property
    def channels(self) -> list[str]:
        return [w.channel.name for w in self._workers]

    def start(self) -> None:
        """Starts one daemon thread per channel (a hung send must not block process exit)."""
        with self._cond:
            if self._started or self._stopping:
                return
            self._started = True
            for worker in self._workers:
                worker.thread = threading.Thread(target=self._run, args=(worker,), daemon=True,
                                                 name=f"ccvault-alerts-{worker.channel.name}")
                worker.thread.start()

    def submit(self, alert: Alert) -> None:
        """Queues the alert for every channel; never blocks on I/O and never raises."""
        try:
            self._submit(alert)
        except Exception as exc:  # a bug here must not take the caller's loop down
            log.error("alert.submit_failed", alert=alert.name, error=repr(exc))

    def _submit(self, alert: Alert) -> None:
        now = time.monotonic()
        with self._cond:
            for worker in self._workers:
                if self._stopping:
                    log.warning("alert.dropped", channel=worker.channel.name, reason="stopped",
                                **_fields(alert))
                    continue
                if len(worker.queue) >= self.queue_size:
                    old = worker.queue.popleft()
                    log.warning("alert.dropped", channel=worker.channel.name, reason="queue full",
                                queue_size=self.queue_size, **_fields(old.alert))
                worker.queue.append(_Item(alert, now))
            self._cond.notify_all()

    def pending(self) -> dict[str, int]:
        """Undelivered notifications per channel (queued + the one in flight)."""
        with self._cond:
            return {w.channel.name: len(w.queue) + (w.head is not None) for w in self._workers}

    def wait_idle(self, timeout: float) -> bool:
        """Waits until every queue is delivered or given up (a drain before stop, in tests)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: all(not w.queue and w.head is None for w in self._workers), timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Ends the workers (retry waits wake at once; a send in progress may finish within
        timeout) and logs every notification left undelivered."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for worker in self._workers:
            if worker.thread is not None:
                worker.thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            for worker in self._workers:
                left = ([worker.head] if worker.head else []) + list(worker.queue)
                for item in left:
                    log.warning("alert.undelivered", channel=worker.channel.name,
                                attempts=item.attempt, **_fields(item.alert))
                worker.queue.clear()
                worker.head = None
            self._cond.notify_all()

    # -- worker thread --

    def _run(self, worker: _Worker) -> None:
        while True:
            item = self._next(worker)
            if item is None:
                return
            if not self._deliver(worker, item):
                return  # interrupted by stop(), which logs the head as undelivered
            with self._cond:
                if worker.head is item:
                    worker.head = None
                self._cond.notify_all()

    def _next(self, worker: _Worker) -> _Item | None:
        """Blocks until there is something to send; None once stopping."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopping or worker.queue)
            if self._stopping:
                return None
            worker.head = worker.queue.popleft()
            return worker.head

    def _deliver(self, worker: _Worker, item: _Item) -> bool:
        """Retries the head until delivered or given up (True), or stopping (False)."""
        channel = worker.channel
        while True:
            item.attempt += 1
            try:
                channel.send(item.alert)
            except Exception as exc:
                if self._retry(channel, item, exc):
                    continue
                return not self._stopping
            log.info("alert.delivered", channel=channel.name, attempt=item.attempt,
                     **_fields(item.alert))
            return True

    def _retry(self, channel: Channel, item: _Item, exc: Exception) -> bool:
        """Logs the failure and waits the backoff: True to try again, False when given up
        or stopping."""
        if self._stopping:  # stop() has already logged it as undelivered
            return False
        error = scrub(_describe(exc), secrets_of(channel))
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (item.attempt - 1))
        waited = time.monotonic() - item.submitted
        if waited + delay > self.give_up_after_s:
            log.error("alert.given_up", channel=channel.name, attempts=item.attempt,
                      error=error, after_s=round(waited, 1), **_fields(item.alert))
            return False
        log.warning("alert.delivery_failed", channel=channel.name, attempt=item.attempt,
                    error=error, retry_in_s=round(delay, 3), **_fields(item.alert))
        with self._cond:
            stopped = self._cond.wait_for(lambda: self._stopping, delay)
        return not stopped


def _fields(alert: Alert) -> dict[str, Any]:
    return {"alert": alert.name, "labels": alert.labels, "status": alert.status,
            "fingerprint": alert.fingerprint}


def _describe(exc: BaseException) -> str:
    """`Type: message`, never a traceback: frames' locals could hold a header or password."""
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


# ---- wiring ------------------------------------------------------------------------------


def build_channels(alerts_config: AlertsBase) -> list[Channel]:
    """The channels configured under [alerts.webhook] / [alerts.email], webhook first.
    Their secrets join the log redactor too, as a second line of defence."""
    channels: list[Channel] = []
    if alerts_config.webhook is not None:
        channels.append(WebhookChannel(alerts_config.webhook))
    if alerts_config.email is not None:
        channels.append(EmailChannel(alerts_config.email))
    for channel in channels:
        REDACTOR.update(secrets_of(channel))
    return channels
