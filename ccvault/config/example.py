"""Render the documented example config from the config model itself.

`python -m ccvault.config.example > config/ccvault.example.toml` regenerates it; a test fails when
the file and the model disagree, so every key's default, bounds and meaning stay documented.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from annotated_types import Ge, Le, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ccvault.config.access import (
    AccessConfig,
    AccessFileConfig,
    AccessMqttConfig,
    DoorConfig,
    MqttPublishConfig,
    PersonConfig,
    RoomConfig,
)
from ccvault.config.alerts import (
    ALERT_DEFAULTS,
    AlertsBase,
    ConditionSettings,
    EmailConfig,
    EventSettings,
    WebhookConfig,
)
from ccvault.config.model import (
    AuditConfig,
    CameraConfig,
    Config,
    ExportConfig,
    HttpConfig,
    IntegrityConfig,
    RecordingConfig,
    StorageConfig,
    VolumeConfig,
)
from ccvault.config.node import NodeConfig
from ccvault.config.policy import MotionConfig, RetentionSettings

HEADER = """\
# ccvault configuration — every key, with its default and bounds.
# Generated from the config model (python -m ccvault.config.example); do not edit by hand.
# Relative paths are relative to this file's directory. Times are stored in UTC.
"""

EXAMPLES: dict[type[BaseModel], list[dict[str, Any]]] = {
    VolumeConfig: [
        {"name": "hot", "path": "/srv/ccvault/hot", "role": "hot"},
        {
            "name": "archive1",
            "path": "/mnt/archive1/ccvault",
            "role": "archive",
            "require_mountpoint": True,
            "reserve_free_bytes": "50 GiB",
        },
        {
            "name": "vault",
            "kind": "s3",
            "role": "archive",
            "endpoint": "https://s3.example.net",
            "bucket": "ccvault-evidence",
            "prefix": "site1/",
            "access_key_file": "/etc/ccvault/secrets/s3-access-key",
            "secret_key_file": "/etc/ccvault/secrets/s3-secret-key",
            "object_lock": "compliance",
            "max_mbit": 200.0,
            "max_bytes": "100 TiB",
        },
    ],
    CameraConfig: [
        {
            "name": "server-room-door",
            "url": "rtsp://viewer@192.0.2.10:554/stream1",
            "password_file": "/etc/ccvault/secrets/server-room-door",
            "installed": date(2024, 4, 1),
        },
        {"name": "lab", "url": "demo://", "enabled": False},
    ],
}
# A camera's [cameras.motion] table: any [motion] key but workers; these are examples.
CAMERA_MOTION_EXAMPLE = {
    "server-room-door": {
        "threshold": 30,
        "masks": [[(0.85, 0.0), (1.0, 0.0), (1.0, 0.12), (0.85, 0.12)]],
    },
}
# The alert channels are off until configured: shown commented out, with example values.
CHANNEL_EXAMPLES: dict[type[BaseModel], dict[str, Any]] = {
    WebhookConfig: {
        "url": "https://chat.example.org/hooks/ccvault",
        "headers": {"Authorization": "Bearer change-me"},
    },
    EmailConfig: {
        "host": "mail.example.org",
        "username": "ccvault",
        "password_file": "/etc/ccvault/secrets/smtp",
        "from": "ccvault@example.org",
        "to": ["security@example.org"],
    },
}
# A camera's [cameras.retention] table: any [retention] key; these are examples.
CAMERA_RETENTION_EXAMPLE = {"server-room-door": {"motion_days": 31, "continuous_days": 21}}
# Access control is off until rooms are configured: shown commented out, with example values.
ACCESS_EXAMPLES: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
    ("[[access.rooms]]", RoomConfig, {"name": "server-room", "cameras": ["server-room-door"]}),
    ("[[access.doors]]", DoorConfig, {"name": "SR-1", "room": "server-room"}),
    (
        "[[access.people]]",
        PersonConfig,
        {"id": "c-17", "name": "A. Contractor", "role": "contractor"},
    ),
    (
        "[access.mqtt]",
        AccessMqttConfig,
        {
            "url": "mqtts://broker.example.org:8883",
            "topic": "acs/events",
            "username": "ccvault",
            "password_file": "/etc/ccvault/secrets/mqtt",
        },
    ),
    (
        "[access.file]",
        AccessFileConfig,
        {
            "path": "/var/log/acs/events.csv",
            "format": "csv",
            "columns": {"id": "EventID", "time": "Timestamp"},
        },
    ),
    (
        "[mqtt]",
        MqttPublishConfig,
        {"url": "mqtts://broker.example.org:8883", "publish_prefix": "ccvault"},
    ),
]


def render() -> str:
    out = [HEADER]
    out += _fields(Config, skip=_tables(Config), values={})
    out += ["", "[node]", *_fields(NodeConfig, skip=set(), values={"name": "main-office"})]
    out.append("")
    out.append("[storage]")
    out += _fields(
        StorageConfig, skip={"volumes"}, values={"catalog": "/var/lib/ccvault/catalog.sqlite"}
    )
    for example in EXAMPLES[VolumeConfig]:
        out += ["", "[[storage.volumes]]", *_fields(VolumeConfig, skip=set(), values=example)]
    out += ["", "[recording]", *_fields(RecordingConfig, skip=set(), values={})]
    out += ["", "[motion]", *_fields(MotionConfig, skip=set(), values={})]
    out += ["", "[retention]", *_fields(RetentionSettings, skip=set(), values={})]
    out += ["", "[audit]", *_fields(AuditConfig, skip=set(), values={})]
    out += ["", "[integrity]", *_fields(IntegrityConfig, skip=set(), values={})]
    out += ["", "[http]", *_fields(HttpConfig, skip=set(), values={})]
    out += ["", "[export]", *_fields(ExportConfig, skip=set(), values={})]
    out += _alerts()
    out += _access()
    for example in EXAMPLES[CameraConfig]:
        out += [
            "",
            "[[cameras]]",
            *_fields(CameraConfig, skip={"motion", "retention"}, values=example),
        ]
        overrides = CAMERA_MOTION_EXAMPLE.get(example["name"])
        if overrides:
            out += [
                "",
                "# Per-camera motion settings: any [motion] key except workers.",
                "[cameras.motion]",
                *_overrides(MotionConfig, "motion", overrides),
            ]
        retention = CAMERA_RETENTION_EXAMPLE.get(example["name"])
        if retention:
            out += [
                "",
                "# Per-camera retention: any [retention] key.",
                "[cameras.retention]",
                *_overrides(RetentionSettings, "retention", retention),
            ]
    return "\n".join(out) + "\n"


def _overrides(model: type[BaseModel], table: str, values: dict[str, Any]) -> list[str]:
    """A camera's own values of [motion] or [retention] keys, each with its key's meaning."""
    lines = []
    for name, value in values.items():
        description = _description(model, name, model.model_fields[name])
        lines += [
            f"# {description} This camera's own; [{table}] has the default.",
            f"{name} = {_toml(value)}",
        ]
    return lines


def _alerts() -> list[str]:
    out = ["", "[alerts]", *_fields(AlertsBase, skip={"webhook", "email"}, values={})]
    for name, spec in ALERT_DEFAULTS.items():
        model = ConditionSettings if spec.kind == "condition" else EventSettings
        out += [
            "",
            f"# {name} ({spec.kind}): {spec.about}.",
            f"[alerts.{name}]",
            *_fields(model, skip=set(), values={}, defaults=spec.defaults()),
        ]
    for table, model in (("webhook", WebhookConfig), ("email", EmailConfig)):
        out += [
            "",
            f"# [alerts.{table}]: uncomment to use (example values).",
            f"# [alerts.{table}]",
            *_commented(_fields(model, skip=set(), values=CHANNEL_EXAMPLES[model])),
        ]
    return out


def _access() -> list[str]:
    out = ["", "[access]", *_fields(AccessConfig, skip=_tables(AccessConfig), values={})]
    for table, model, example in ACCESS_EXAMPLES:
        out += [
            "",
            f"# {table}: uncomment to use (example values).",
            f"# {table}",
            *_commented(_fields(model, skip=set(), values=example)),
        ]
    return out


def _commented(lines: list[str]) -> list[str]:
    return [f"# {line}" if not line.startswith("#") else line for line in lines]


def _tables(model: type[BaseModel]) -> set[str]:
    """Fields that are tables of their own (a model, or a list of models), not keys."""
    out = set()
    for name, info in model.model_fields.items():
        kinds = [info.annotation, *getattr(info.annotation, "__args__", ())]
        if any(isinstance(k, type) and issubclass(k, BaseModel) for k in kinds) or any(
            isinstance(a, type) and issubclass(a, BaseModel)
            for k in kinds
            for a in getattr(k, "__args__", ())
        ):
            out.add(name)
    return out


def _fields(
    model: type[BaseModel],
    skip: set[str],
    values: dict[str, Any],
    defaults: dict[str, Any] | None = None,
) -> list[str]:
    """Each key with its description; `defaults` overrides what the model says the default
    is (an [alerts.<name>] table's defaults are that alert's own)."""
    lines = []
    for field_name, info in model.model_fields.items():
        if field_name in skip:
            continue
        name = info.alias or field_name
        if defaults and name in defaults:
            info = FieldInfo.merge_field_infos(info, default=defaults[name])
        lines.append(f"# {_description(model, name, info)} {_facts(info)}")
        if name in values:
            lines.append(f"{name} = {_toml(values[name])}")
        elif info.is_required():
            lines.append(f"# {name} = (required)")
        else:
            lines.append(f"# {name} = {_default_text(info)}")
    return lines


def _description(model: type[BaseModel], name: str, info: FieldInfo) -> str:
    """A key's meaning; a key without one would read `# None Default: …`, so it is refused
    here and the example (and its test) cannot be generated with it."""
    text = (info.description or "").strip()
    if not text:
        raise ValueError(f"{model.__name__}.{name} has no description")
    return text


def _facts(info: FieldInfo) -> str:
    facts = []
    if info.is_required():
        facts.append("Required.")
    else:
        facts.append(f"Default: {_default_text(info)}.")
    bounds = {type(m): m for m in info.metadata}
    if Ge in bounds and Le in bounds:
        facts.append(f"Range: {bounds[Ge].ge}–{bounds[Le].le}.")
    if MinLen in bounds:
        facts.append(f"At least {bounds[MinLen].min_length}.")
    return " ".join(facts)


def _default_text(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "default_text" in extra:
        return f"({extra['default_text']})"
    if info.default_factory is not None:
        return _toml(info.default_factory())  # type: ignore[call-arg]
    if info.default is None:
        return "(none)"
    return _toml(info.default)


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, date):  # a TOML date or date-time, unquoted
        return value.isoformat()
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    print(render(), end="")
