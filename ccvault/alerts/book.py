"""The alert state machine, pure: observations in, notifications out.

A condition observed true becomes *pending*; after `for_seconds` it *fires* (one
notification), is re-sent every `renotify_minutes` while it stays true, is re-sent at once
when its severity changes, and *resolves* (one notification) when it is no longer observed.
Time comes in as an argument, so the rules are tested without waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from ccvault.alerts.model import FIRING, RESOLVED, Alert, fingerprint
from ccvault.config.alerts import ConditionSettings

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Observation:
    """A condition seen true now, with what to tell people about it."""

    name: str
    labels: dict[str, str]
    summary: str
    severity: str | None = None  # None: the configured severity
    details: dict[str, str] = field(default_factory=dict)
    # A fact, not an estimate that may flap: fires without waiting for_seconds (a volume
    # pressure could not free is under its reserve now).
    at_once: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.name, self.labels)


@dataclass(frozen=True)
class Instance:
    """One alert instance the book tracks: pending (not firing yet) or firing."""

    observation: Observation
    severity: str
    since_ms: int  # first observed true (pending) or started firing
    firing: bool = False
    notified_ms: int | None = None
    row_id: int | None = None  # its catalog row, once firing

    def alert(self, status: str, now_ms: int) -> Alert:
        obs = self.observation
        return Alert(
            name=obs.name,
            labels=obs.labels,
            severity=self.severity,
            status=status,
            summary=obs.summary,
            starts_ms=self.since_ms,
            ends_ms=now_ms if status == RESOLVED else None,
            details=obs.details,
        )


@dataclass(frozen=True)
class Change:
    """What the book decided: send `alert`; `instance` is the state to persist."""

    kind: str  # fired | renotified | escalated | resolved
    instance: Instance
    alert: Alert


class AlertBook:
    def __init__(
        self, settings: Callable[[str], ConditionSettings], firing: Iterable[Instance] = ()
    ) -> None:
        self.settings = settings
        self.instances: dict[str, Instance] = {i.observation.fingerprint: i for i in firing}

    def update(self, observed: Iterable[Observation], now_ms: int) -> list[Change]:
        seen: dict[str, Observation] = {}
        for obs in observed:
            if self.settings(obs.name).enabled:
                seen[obs.fingerprint] = obs
        changes = [self._resolve(key, now_ms) for key in list(self.instances) if key not in seen]
        changes += [self._observe(obs, now_ms) for obs in seen.values()]
        return [c for c in changes if c is not None]

    def firing(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.firing]

    def _resolve(self, key: str, now_ms: int) -> Change | None:
        instance = self.instances.pop(key)
        if not instance.firing:
            return None  # pending only: it never fired, so there is nothing to take back
        return Change("resolved", instance, instance.alert(RESOLVED, now_ms))

    def _observe(self, obs: Observation, now_ms: int) -> Change | None:
        rule = self.settings(obs.name)
        severity = obs.severity or rule.severity
        old = self.instances.get(obs.fingerprint)
        if old is None:
            old = Instance(obs, severity, now_ms)
        current = replace(old, observation=obs, severity=severity)
        kind = self._due(old, current, rule, now_ms)
        if kind is None:
            self.instances[obs.fingerprint] = current
            return None
        since = current.since_ms if current.firing else now_ms
        current = replace(current, firing=True, since_ms=since, notified_ms=now_ms)
        self.instances[obs.fingerprint] = current
        return Change(kind, current, current.alert(FIRING, now_ms))

    @staticmethod
    def _due(old: Instance, new: Instance, rule: ConditionSettings, now_ms: int) -> str | None:
        if not old.firing:
            due = new.observation.at_once or now_ms - old.since_ms >= rule.for_seconds * 1000
            return "fired" if due else None
        if new.severity != old.severity:
            return "escalated"
        every_ms = rule.renotify_minutes * MINUTE_MS
        if every_ms and old.notified_ms is not None and now_ms - old.notified_ms >= every_ms:
            return "renotified"
        return None
