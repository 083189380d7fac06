"""What one alert notification says, independent of the channel that carries it."""

from __future__ import annotations

import hashlib
import json
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from ccvault import __version__
from ccvault.host.logs import MASK

FIRING = "firing"
RESOLVED = "resolved"


def fingerprint(name: str, labels: dict[str, str]) -> str:
    """A stable id of one alert instance (name + labels), as Alertmanager's fingerprint."""
    text = json.dumps([name, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    """One notification: an alert instance's state at the moment it is sent."""

    name: str  # "camera_offline"
    labels: dict[str, str]  # what tells instances apart, e.g. {"camera": "door"}
    severity: str  # info | warning | critical
    status: str  # FIRING | RESOLVED
    summary: str  # one line for people
    starts_ms: int  # UTC ms when it started firing (events: when it happened)
    ends_ms: int | None = None  # UTC ms when it resolved
    event: bool = False  # one-off: sent once, resolves itself
    details: dict[str, str] = field(default_factory=dict)  # extra annotations

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.name, self.labels)


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
