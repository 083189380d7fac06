"""[access]: the server rooms, their doors and people, where access events come from, and the
rules the room's door log is held to; [mqtt]: where ccvault publishes its own events."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from ccvault.config.fields import Model, Slug, form, is_loopback

# A free-text identifier from another system (a badge holder, an event id): printable, short.
PERSON_ID = form(r"^[^\x00-\x1f\x7f]{1,128}$", "1 to 128 printable characters")
MQTT_URL = form(r"^mqtts?://[^/]+$", "mqtt://host:port or mqtts://host:port, without a path")


class RoomConfig(Model):
    name: Slug = Field(description="The room, as alerts, visits and commands name it.")
    cameras: list[Slug] = Field(
        default_factory=list, description="The cameras that watch the room (configured ones)."
    )
    escort_required: list[str] = Field(
        default_factory=lambda: ["contractor", "visitor"],
        description="Roles that may be inside only while someone of an escort role is.",
    )
    escort_roles: list[str] = Field(
        default_factory=lambda: ["staff"], description="Roles that may escort the ones above."
    )
    grace_seconds: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="How long an escorted role may be alone before two_person_rule fires "
        "(and how long more people on video than inside may last).",
    )
    entry_window_seconds: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Motion this soon after an entry is that entry's person, not a stranger "
        "(presence_without_entry).",
    )

    @model_validator(mode="after")
    def _roles_apart(self) -> RoomConfig:
        both = set(self.escort_required) & set(self.escort_roles)
        if both:
            raise ValueError(
                f"escort_roles: {', '.join(sorted(both))} cannot both need an escort and be one"
            )
        return self


class DoorConfig(Model):
    name: str = Field(pattern=PERSON_ID, description="The door as the access system names it.")
    room: Slug = Field(description="The room this door leads into.")


class PersonConfig(Model):
    id: str = Field(pattern=PERSON_ID, description="The person's id in the access system.")
    name: str = Field("", max_length=200, description="Their name, for people reading lists.")
    role: str = Field(min_length=1, max_length=64, description="staff, contractor, visitor…")


class AccessMqttConfig(Model):
    url: str = Field(pattern=MQTT_URL, description="mqtt://host:port or mqtts://…")
    topic: str = Field(min_length=1, description="Topic (filter) the access system publishes to.")
    username: str | None = Field(None, description="Broker user.")
    password_file: Path | None = Field(None, description="File holding the broker password.")
    tls: bool | None = Field(None, description="Use TLS (default: when the url is mqtts://).")
    ca_file: Path | None = Field(None, description="Extra CA (PEM) to trust for TLS.")

    @model_validator(mode="after")
    def _tls_for_passwords(self) -> AccessMqttConfig:
        check_broker(self.url, self.password_file, self.tls)
        return self


class AccessFileConfig(Model):
    path: Path = Field(description="The event log file the access system writes (followed).")
    format: Literal["csv", "jsonl"] = Field("csv", description="csv (with a header) or jsonl.")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="The file's column (or JSON key) for each event field, when the names "
        'differ: {id = "EventID", time = "Timestamp", door = "Reader", …}.',
    )

    @model_validator(mode="after")
    def _known_fields(self) -> AccessFileConfig:
        unknown = set(self.columns) - set(EVENT_FIELDS)
        if unknown:
            raise ValueError(
                f"columns: unknown event field(s) {', '.join(sorted(unknown))} "
                f"(fields: {', '.join(EVENT_FIELDS)})"
            )
        return self


EVENT_FIELDS = ("id", "time", "door", "person", "role", "direction", "result")


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, tls by scheme) of an mqtt:// or mqtts:// URL; 1883 / 8883 by default."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return parts.hostname or "", parts.port or (8883 if tls else 1883), tls


def check_broker(url: str, password_file: Path | None, tls: bool | None) -> None:
    """A broker password travels in clear over plain MQTT: only to this machine."""
    host, _port, scheme_tls = broker_address(url)
    if (
        password_file is not None
        and not (scheme_tls if tls is None else tls)
        and not (is_loopback(host))
    ):
        raise ValueError(
            "password_file: a password goes to another machine only over TLS "
            "(use mqtts:// or tls = true)"
        )


class AccessConfig(Model):
    rooms: list[RoomConfig] = Field(default_factory=list, description="[[access.rooms]].")
    doors: list[DoorConfig] = Field(default_factory=list, description="[[access.doors]].")
    people: list[PersonConfig] = Field(default_factory=list, description="[[access.people]].")
    mqtt: AccessMqttConfig | None = Field(None, description="[access.mqtt]: events by MQTT.")
    file: AccessFileConfig | None = Field(None, description="[access.file]: a followed log.")
    padding_seconds: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="Footage kept (and held) this long before an entry and after an exit.",
    )
    access_log_days: float = Field(
        400.0,
        gt=0,
        le=3650,
        description="Access events and visits are personal data too: kept this long, then "
        "purged (PCI DSS asks at least 90 days).",
    )
    max_future_seconds: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="An event stamped further ahead than this is refused (a wrong clock).",
    )
    denied_count: int = Field(
        5, ge=1, le=1000, description="access_denied_repeatedly: this many denials at a door…"
    )
    denied_minutes: float = Field(5.0, gt=0, le=1440, description="…within this many minutes.")

    @model_validator(mode="after")
    def _references(self) -> AccessConfig:
        rooms = [r.name for r in self.rooms]
        for i, name in enumerate(rooms):
            if name in rooms[:i]:
                raise ValueError(f"rooms[{i}].name: duplicate room {name!r}")
        doors = [d.name for d in self.doors]
        for i, door in enumerate(self.doors):
            if door.name in doors[:i]:
                raise ValueError(f"doors[{i}].name: duplicate door {door.name!r}")
            if door.room not in rooms:
                raise ValueError(f"doors[{i}].room: no room {door.room!r} in [[access.rooms]]")
        ids = [p.id for p in self.people]
        for i, pid in enumerate(ids):
            if pid in ids[:i]:
                raise ValueError(f"people[{i}].id: duplicate person {pid!r}")
        return self

    def room(self, name: str) -> RoomConfig | None:
        return next((r for r in self.rooms if r.name == name), None)

    def door(self, name: str) -> DoorConfig | None:
        return next((d for d in self.doors if d.name == name), None)

    def person(self, pid: str) -> PersonConfig | None:
        return next((p for p in self.people if p.id == pid), None)


class MqttPublishConfig(Model):
    url: str = Field(pattern=MQTT_URL, description="mqtt://host:port or mqtts://…")
    publish_prefix: str = Field(
        "ccvault",
        pattern=form(r"^[^#+\x00]{1,64}$", "1 to 64 characters without #, + or NUL"),
        description="Topics start with this.",
    )
    username: str | None = Field(None, description="Broker user.")
    password_file: Path | None = Field(None, description="File holding the broker password.")
    tls: bool | None = Field(None, description="Use TLS (default: when the url is mqtts://).")
    ca_file: Path | None = Field(None, description="Extra CA (PEM) to trust for TLS.")

    @model_validator(mode="after")
    def _tls_for_passwords(self) -> MqttPublishConfig:
        check_broker(self.url, self.password_file, self.tls)
        return self
