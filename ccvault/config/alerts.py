"""[alerts]: every alert ccvault raises with its defaults, the per-alert settings, and the
webhook and e-mail channels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    ConfigDict,
    Field,
    create_model,
    model_validator,
)

from ccvault.config.fields import Model, Severity, form, is_loopback
from ccvault.config.secrets import read_secret


# Every alert ccvault raises: kind, and the defaults of [alerts.<name>]. A condition fires
# after being true for for_seconds, is re-sent every renotify_minutes (0 = never) while it
# stays true, and resolves when it is false again; an event is sent once and resolves itself.
@dataclass(frozen=True)
class AlertSpec:
    kind: str  # condition | event
    severity: str
    about: str  # what it means, for the example config and the docs
    for_seconds: float = 0
    renotify_minutes: float = 60

    def defaults(self) -> dict[str, object]:
        """The keys of its [alerts.<name>] table, with this alert's own defaults."""
        keys = ["enabled", "severity"] + (
            ["for_seconds", "renotify_minutes"] if self.kind == "condition" else []
        )
        return {k: getattr(self, k, True) for k in keys}


C, E = "condition", "event"
ALERT_DEFAULTS: dict[str, AlertSpec] = {
    "volume_low": AlertSpec(
        C,
        "warning",
        "a volume's headroom (free space above its reserve plus footage that "
        "may go, at the current write rate) is under headroom_warning_hours; critical under "
        "headroom_critical_hours, and at once (for_seconds aside) when disk pressure deleted "
        "all it may and the volume is still under its reserve, saying how much of it is not "
        "footage",
        for_seconds=300,
        renotify_minutes=240,
    ),
    "volume_unavailable": AlertSpec(
        C,
        "critical",
        "a volume is missing, unmounted, read-only, has the wrong identity, or writes to it fail",
    ),
    "retention_at_risk": AlertSpec(
        C,
        "warning",
        "the storage holds fewer days than the longest min_days at today's rate",
        renotify_minutes=1440,
    ),
    "held_footage_blocking": AlertSpec(
        C,
        "critical",
        "a volume stays under its reserve and holds held or pinned footage nothing may delete",
    ),
    "camera_offline": AlertSpec(
        C,
        "critical",
        "a camera is offline (no footage for offline_after_seconds); "
        "resolves when it records again",
    ),
    "recording_failed": AlertSpec(
        C,
        "critical",
        "a camera's frames arrive but a segment ffmpeg finished was not stored within a "
        "segment length less a second (at least 2 s: a full spool, a volume or catalog "
        "refusing writes): footage is being lost; the camera is 'failing' until one is",
    ),
    "camera_flapping": AlertSpec(
        C,
        "warning",
        "a camera lost its connection more than flap_reconnects_per_hour times in the last hour",
        renotify_minutes=240,
    ),
    "analysis_backlog": AlertSpec(
        C,
        "warning",
        "motion analysis of a camera is more than backlog_minutes behind",
        for_seconds=300,
        renotify_minutes=240,
    ),
    "node_offline": AlertSpec(
        C,
        "critical",
        "another node sharing the catalog missed three heartbeats (down or cut off): its "
        "cameras are not being recorded by it, and its footage is unavailable here until it "
        "is back; raised by the nodes still up, resolved when it beats again",
    ),
    "catalog_error": AlertSpec(C, "critical", "the catalog cannot be read or a write to it failed"),
    "catalog_unreachable": AlertSpec(
        C,
        "critical",
        "the PostgreSQL catalog cannot be reached (stopped, refusing connections, the connection "
        "lost): recording goes on into the spool, which keeps every finished segment durable "
        "until the catalog is back and ingest stores them; sent by the channels that need no "
        "catalog, put on record in it once it is back",
    ),
    "audit_chain_broken": AlertSpec(
        C, "critical", "the audit log's hash chain does not verify", renotify_minutes=1440
    ),
    "segment_corrupt": AlertSpec(
        C,
        "warning",
        "segments of a camera were quarantined or failed the re-hash in the last 24 h",
        renotify_minutes=1440,
    ),
    "clock_unsynchronised": AlertSpec(
        C,
        "warning",
        "the host clock is not NTP-synchronised (timestamps are evidence)",
        for_seconds=600,
        renotify_minutes=1440,
    ),
    "clock_unchecked": AlertSpec(
        C,
        "warning",
        "nothing on this host tells whether the clock is synchronised (no systemd-timesyncd, "
        'no chrony); clock_sync = "off" accepts that',
        renotify_minutes=1440,
    ),
    "premature_deletion": AlertSpec(
        E, "critical", "footage inside min_days was deleted to make room (disk pressure)"
    ),
    "purge_failed": AlertSpec(
        E, "critical", "a retention or pressure pass failed, or some of its actions did"
    ),
    "export_failed": AlertSpec(E, "warning", "an evidence export failed"),
    "config_rejected": AlertSpec(
        E, "warning", "a reloaded config was invalid; the running one was kept"
    ),
    "two_person_rule": AlertSpec(
        C,
        "critical",
        "someone of an escort_required role is in a room with nobody of an "
        "escort role, for longer than the room's grace_seconds",
        renotify_minutes=15,
    ),
    "presence_without_entry": AlertSpec(
        C,
        "critical",
        "motion on a room's camera while the room is empty by the door log and "
        "no entry came within entry_window_seconds (a tailgater, a propped door, a missed "
        "entry)",
        renotify_minutes=0,
    ),
    "more_people_than_entries": AlertSpec(
        C,
        "warning",
        "more people counted on a room's camera than are inside by the door log, "
        "for longer than grace_seconds",
        renotify_minutes=0,
    ),
    "access_denied_repeatedly": AlertSpec(
        C,
        "warning",
        "[access] denied_count denials at one door within denied_minutes",
        renotify_minutes=60,
    ),
    "door_forced": AlertSpec(E, "critical", "a door was opened without a granted badge"),
    "door_held_open": AlertSpec(E, "warning", "a door was held open"),
}


class EventSettings(Model):
    enabled: bool = Field(True, description="Send it at all (it is always logged).")
    severity: Severity = Field("warning", description="info, warning or critical.")


class ConditionSettings(EventSettings):
    for_seconds: float = Field(
        0, ge=0, le=86_400, description="How long it must stay true before it fires."
    )
    renotify_minutes: float = Field(
        60, ge=0, le=10_080, description="Re-send while it stays firing; 0 = never."
    )


class WebhookConfig(Model):
    url: str = Field(
        pattern=form(r"^https?://", "an http:// or https:// URL"),
        description="Receives Alertmanager-style JSON.",
    )
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="Per attempt.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra request headers (e.g. Authorization); never logged, and never "
        "sent over plain http:// to another machine.",
    )

    @model_validator(mode="after")
    def _no_secret_in_clear(self) -> WebhookConfig:
        """Headers are treated as secrets (never logged), and so is a URL's user:password:
        neither crosses a network unencrypted. Loopback (a local relay) stays on this host."""
        parts = urlsplit(self.url)
        if parts.scheme.lower() == "https" or is_loopback(parts.hostname or ""):
            return self
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "url: credentials in an http:// URL would cross the network in clear (use https://)"
            )
        if self.headers:
            names = ", ".join(sorted(self.headers))
            raise ValueError(
                f"headers: {names} would cross the network in clear over the http:// "
                "alerts.webhook.url (use https://)"
            )
        return self


class EmailConfig(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    host: str = Field(min_length=1, description="SMTP server.")
    port: int = Field(587, ge=1, le=65_535, description="SMTP port (587 = submission).")
    starttls: bool = Field(
        True, description="Upgrade with STARTTLS and verify the server's certificate."
    )
    ca_file: Path | None = Field(
        None, description="Extra CA certificate (PEM) to trust, for a private mail server."
    )
    username: str | None = Field(None, description="Sign in as this user (after STARTTLS).")
    password_file: Path | None = Field(None, description="File holding the SMTP password.")
    password_credential: str | None = Field(
        None, description="systemd credential (LoadCredential=) holding the SMTP password."
    )
    sender: str = Field(alias="from", min_length=3, description="From: address.")
    to: list[str] = Field(min_length=1, description="Recipients.")
    timeout_seconds: float = Field(30.0, gt=0, le=300, description="Per attempt.")

    @model_validator(mode="after")
    def _tls_for_passwords(self) -> EmailConfig:
        if not self.starttls and (self.username or self.password_file or self.password_credential):
            raise ValueError(
                "starttls: a password is only sent over TLS (set starttls = true, "
                "or drop username/password_file for a local relay)"
            )
        if self.username and not (self.password_file or self.password_credential):
            raise ValueError("username: needs password_file or password_credential")
        return self

    def password(self) -> str | None:
        return read_secret(self.password_file, self.password_credential)


def _alert_field(name: str) -> tuple[type, object]:
    spec = ALERT_DEFAULTS[name]
    settings = ConditionSettings if spec.kind == "condition" else EventSettings
    return settings, Field(
        default_factory=lambda: settings(**spec.defaults()), description=f"{name}: {spec.about}."
    )


class AlertsBase(Model):
    check_seconds: float = Field(
        10.0, ge=1, le=300, description="How often conditions are evaluated."
    )
    headroom_warning_hours: float = Field(
        24.0, gt=0, le=8760, description="volume_low (warning) below this much headroom."
    )
    headroom_critical_hours: float = Field(
        4.0, gt=0, le=8760, description="volume_low turns critical below this much headroom."
    )
    flap_reconnects_per_hour: int = Field(
        6, ge=1, le=10_000, description="camera_flapping above this many reconnects an hour."
    )
    backlog_minutes: float = Field(
        30.0,
        gt=0,
        le=10_080,
        description="analysis_backlog when motion analysis is this far behind.",
    )
    clock_sync: Literal["auto", "timesyncd", "chrony", "off"] = Field(
        "auto",
        description="How to learn whether the clock is NTP-synchronised: "
        "systemd-timesyncd's flag file, `chronyc tracking`, auto (whichever is present; "
        "neither is the clock_unchecked alert), off (no check and no alert, on purpose).",
    )
    history_days: float = Field(
        30.0, gt=0, le=3650, description="Resolved alerts are listed this long."
    )
    webhook: WebhookConfig | None = Field(None, description="[alerts.webhook] channel.")
    email: EmailConfig | None = Field(None, description="[alerts.email] channel.")

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, raw: object) -> object:
        """A partial [alerts.<name>] table keeps that alert's own defaults for the rest."""
        if isinstance(raw, dict):
            raw = dict(raw)
            for name, spec in ALERT_DEFAULTS.items():
                if isinstance(raw.get(name), dict):
                    raw[name] = {**spec.defaults(), **raw[name]}
        return raw

    @model_validator(mode="after")
    def _thresholds(self) -> AlertsBase:
        if self.headroom_critical_hours > self.headroom_warning_hours:
            raise ValueError("headroom_critical_hours: more than headroom_warning_hours")
        return self

    def settings(self, name: str) -> ConditionSettings | EventSettings:
        return getattr(self, name)


AlertsConfig = create_model(  # type: ignore[call-overload]
    "AlertsConfig", __base__=AlertsBase, **{n: _alert_field(n) for n in ALERT_DEFAULTS}
)
