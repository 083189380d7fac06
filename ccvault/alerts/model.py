"""What one alert notification says, independent of the channel that carries it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

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
