"""The e-mail channel: SMTP with STARTTLS and a verified certificate."""

from __future__ import annotations

import email.utils
import re
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage

import structlog

from ccvault.alerts.model import CONTROL, FIRING, USER_AGENT, Alert, hostname
from ccvault.config.alerts import EmailConfig
from ccvault.timefmt import utc_text

log = structlog.get_logger("ccvault.alerts")


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
    lines = [
        alert.summary,
        "",
        f"alert:    {alert.name}",
        f"status:   {alert.status}",
        f"severity: {alert.severity}",
        f"host:     {instance}",
        f"started:  {utc_text(alert.starts_ms)}",
    ]
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
