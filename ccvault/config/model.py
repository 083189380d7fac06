"""The one typed configuration model: every key, its default, bounds and meaning live here.

Everything else reads a frozen `Config`; the example config is generated from these fields
(`python -m ccvault.config.example`) and a test keeps the two equal, so documentation cannot drift.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psutil
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from ccvault.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/ccvault/ccvault.toml")
SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SOURCE_SCHEMES = ("rtsp", "rtsps", "http", "https", "file", "demo")

Slug = Annotated[str, Field(pattern=SLUG)]
GIB = 1 << 30
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 1000**2, "mb": 1000**2,
          "mib": 1 << 20, "g": 1000**3, "gb": 1000**3, "gib": GIB, "t": 1000**4, "tb": 1000**4,
          "tib": 1 << 40}


def _byte_size(value: object) -> object:
    """Sizes may be written as operators think of them: 1073741824, "1 GiB", "500GB"."""
    if not isinstance(value, str):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {value!r} (write bytes, or e.g. \"500 GiB\")")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


ByteSize = Annotated[int, BeforeValidator(_byte_size), Field(ge=0)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def system_timezone() -> str:
    """The host's IANA zone name, so that a config without `timezone` shows local time."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _is_zone(tz):
        return tz
    try:
        text = Path("/etc/timezone").read_text().strip()
        if _is_zone(text):
            return text
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        name = target.split("zoneinfo/", 1)[1]
        if _is_zone(name):
            return name
    except (OSError, IndexError):
        pass
    return "UTC"


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


class VolumeConfig(Model):
    name: Slug = Field(description="Unique name of the volume, used in commands and the catalog.")
    path: Path = Field(description="Directory that holds this volume's footage.")
    role: Literal["hot", "archive"] = Field(
        "hot", description="hot: new segments land here; archive: bigger, slower storage."
    )
    require_mountpoint: bool = Field(
        False,
        description="When true the path must be a mount point, so an unmounted disk is "
        "detected instead of filling the root filesystem.",
    )
    reserve_free_percent: float = Field(
        5.0, ge=0.0, le=50.0,
        description="Free space kept on the volume, as a percentage of its size; the low-water "
        "mark is the larger of this and reserve_free_bytes.",
    )
    reserve_free_bytes: ByteSize = Field(
        GIB, description="Free space kept on the volume, in bytes (or \"10 GiB\")."
    )
    max_bytes: ByteSize | None = Field(
        None, description="Most footage this volume may hold (bytes or \"2 TiB\")."
    )

    def reserve_bytes(self, total_bytes: int) -> int:
        """The low-water mark: absolute floors keep a percentage from meaning nothing."""
        return max(self.reserve_free_bytes, int(total_bytes * self.reserve_free_percent / 100))


class StorageConfig(Model):
    catalog: Path = Field(description="SQLite catalog file.")
    spool: Path | None = Field(
        None,
        description="Where recorders write open segments. On another filesystem than the "
        "volume, ingest copies, fsyncs and re-hashes instead of renaming.",
        json_schema_extra={"default_text": "<first available hot volume>/.spool"},
    )
    volumes: list[VolumeConfig] = Field(min_length=1, description="Storage volumes, in order.")

    @model_validator(mode="after")
    def _volumes_sane(self) -> StorageConfig:
        names = [v.name for v in self.volumes]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"volumes[{i}].name: duplicate volume name {name!r}")
        if not any(v.role == "hot" for v in self.volumes):
            raise ValueError("volumes: at least one volume needs role = 'hot'")
        return self


class RecordingConfig(Model):
    segment_seconds: int = Field(60, ge=2, le=600, description="Target length of a segment.")
    ffmpeg_path: Path | None = Field(
        None, description="A system ffmpeg to use instead of the one bundled by imageio-ffmpeg."
    )
    offline_after_seconds: int = Field(
        60, ge=5, le=86400, description="A camera with no footage for this long is 'offline'."
    )
    rescan_seconds: int = Field(
        30, ge=1, le=3600, description="Spool rescan interval; file events are only hints."
    )


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Polygon = Annotated[list[tuple[Fraction, Fraction]], Field(min_length=3)]


class MotionSettings(Model):
    """How motion is found in one camera's footage; [motion] sets them for all cameras and
    [cameras.motion] overrides them field by field (a camera's masks replace the global ones)."""

    enabled: bool = Field(True, description="Analyse this footage for motion.")
    mode: Literal["auto", "keyframes", "all"] = Field(
        "auto",
        description="auto: keyframes first, then full decoding at the edges of each hit, when "
        "keyframes are at most 2 s apart, every frame otherwise; keyframes: keyframes only; "
        "all: every frame.",
    )
    threshold: int = Field(
        25, ge=1, le=255, description="Luma difference (0-255) that makes a pixel 'changed'."
    )
    min_area: float = Field(
        0.002, ge=0.0, le=1.0,
        description="Smallest moving region that counts, as a fraction of the frame.",
    )
    min_seconds: float = Field(
        0.5, ge=0.0, le=60.0, description="Shorter activity is not reported."
    )
    merge_gap_seconds: float = Field(
        3.0, ge=0.0, le=600.0, description="Hits closer than this are one span."
    )
    pre_seconds: float = Field(
        5.0, ge=0.0, le=600.0,
        description="Footage kept as activity before a span starts (retention padding).",
    )
    post_seconds: float = Field(
        10.0, ge=0.0, le=600.0,
        description="Footage kept as activity after a span ends (retention padding).",
    )
    masks: list[Polygon] = Field(
        default_factory=list,
        description="Polygons to ignore (rack LEDs, a wall clock, a window), in relative "
        "0-1 coordinates [[x, y], ...].",
    )
    lighting: Literal["event", "ignore"] = Field(
        "event",
        description="A change over most of the frame at once (lights switched on): 'event' "
        "records a lighting span (activity for retention, not motion); 'ignore' drops it.",
    )


class MotionConfig(MotionSettings):
    workers: int | None = Field(
        None, ge=1, le=64, description="Analysis processes, at lower CPU priority.",
        json_schema_extra={"default_text": "cores - 1, at least 1"},
    )


def _override_of(settings: type[Model], name: str) -> type[Model]:
    """The per-camera table for a global one: the same keys, each optional (unset = global)."""
    return create_model(  # type: ignore[call-overload, no-any-return]
        name,
        __base__=Model,
        **{key: (info.annotation | None, Field(None, description=info.description))
           for key, info in settings.model_fields.items()},
    )


MotionOverride = _override_of(MotionSettings, "MotionOverride")


class RetentionSettings(Model):
    """How long footage is kept; [retention] sets it for all cameras and [cameras.retention]
    overrides it key by key. Windows count from a segment's end, the ceiling from its start."""

    continuous_days: float = Field(
        14.0, gt=0, le=3650, description="Keep idle footage (no activity) this long."
    )
    motion_days: float = Field(
        31.0, gt=0, le=3650,
        description="Keep footage whose padded range overlaps activity this long.",
    )
    max_days: float = Field(
        31.0, gt=0, le=3650,
        description="Privacy ceiling: nothing older survives except under hold or export pin.",
    )
    min_days: float = Field(
        7.0, ge=0, le=3650,
        description="The promise: footage younger than this is deleted only under disk "
        "pressure, with a premature_deletion alert.",
    )
    max_bytes: ByteSize | None = Field(
        None, description="Per-camera quota; the oldest footage past min_days goes first."
    )
    hot_days: float = Field(
        7.0, ge=0, le=3650,
        description="Footage older than this moves from hot volumes to an archive volume.",
    )
    thin_after_days: float = Field(
        0.0, ge=0, le=3650,
        description="Idle footage older than this is rewritten keyframes-only (stream copy); "
        "0 = off.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RetentionSettings:
        if self.continuous_days > self.motion_days:
            raise ValueError("continuous_days: must not exceed motion_days "
                             f"({self.continuous_days} > {self.motion_days})")
        if self.motion_days > self.max_days:
            raise ValueError(f"motion_days: must not exceed max_days "
                             f"({self.motion_days} > {self.max_days})")
        if self.min_days > self.continuous_days:
            raise ValueError(f"min_days: must not exceed continuous_days "
                             f"({self.min_days} > {self.continuous_days})")
        if self.thin_after_days and self.thin_after_days >= self.continuous_days:
            raise ValueError("thin_after_days: must be below continuous_days, or idle "
                             "footage is deleted before it is thinned")
        return self


RetentionOverride = _override_of(RetentionSettings, "RetentionOverride")


class AuditConfig(Model):
    path: Path | None = Field(
        None, description="Append-only, hash-chained audit log (JSON lines).",
        json_schema_extra={"default_text": "audit.jsonl beside the catalog"},
    )


class IntegrityConfig(Model):
    scrub_mb_per_s: float = Field(
        20.0, ge=0, le=10_000,
        description="Pace of the background re-hash of stored segments; 0 = off.",
    )


class HttpConfig(Model):
    listen: str = Field(
        "127.0.0.1:8750", pattern=r"^[^:]*:\d{1,5}$",
        description="host:port of the HTTP API and web page; an empty host or 0.0.0.0 "
        "listens everywhere (use TLS then).",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate; with tls_key, HTTPS.")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    viewer_clip_minutes: int = Field(
        30, ge=1, le=1440, description="Longest clip a viewer may stream at once."
    )
    metrics_public: bool = Field(
        False, description="Serve /metrics without credentials (otherwise any user's token)."
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert: tls_cert and tls_key go together")
        return self

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0] or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class ExportConfig(Model):
    dir: Path | None = Field(
        None, description="Where export bundles go by default; bundles here are footage too "
        "and are deleted after keep_days.",
        json_schema_extra={"default_text": "exports/ beside the catalog"},
    )
    allowed_dirs: list[Path] = Field(
        default_factory=list,
        description="Other directories an export may be written into (an evidence share); "
        "nothing outside these and dir is allowed.",
    )
    max_hours: float = Field(24.0, gt=0, le=744, description="Longest range one export may take.")
    keep_days: float = Field(
        31.0, gt=0, le=3650, description="Export bundles in dir are deleted after this long."
    )


Severity = Literal["info", "warning", "critical"]

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
        keys = ["enabled", "severity"] + (["for_seconds", "renotify_minutes"]
                                          if self.kind == "condition" else [])
        return {k: getattr(self, k, True) for k in keys}


C, E = "condition", "event"
ALERT_DEFAULTS: dict[str, AlertSpec] = {
    "volume_low": AlertSpec(
        C, "warning", "a volume's headroom (free space above its reserve plus footage that "
        "may go, at the current write rate) is under headroom_warning_hours; critical under "
        "headroom_critical_hours", for_seconds=300, renotify_minutes=240),
    "volume_unavailable": AlertSpec(
        C, "critical", "a volume is missing, unmounted, read-only, has the wrong identity, "
        "or writes to it fail"),
    "retention_at_risk": AlertSpec(
        C, "warning", "the storage holds fewer days than the longest min_days at today's "
        "rate", renotify_minutes=1440),
    "held_footage_blocking": AlertSpec(
        C, "critical", "a volume is full of footage nothing may delete (holds, pins, "
        "min_days)"),
    "camera_offline": AlertSpec(
        C, "critical", "a camera is offline (no footage for offline_after_seconds); "
        "resolves when it records again"),
    "camera_flapping": AlertSpec(
        C, "warning", "a camera lost its connection more than flap_reconnects_per_hour "
        "times in the last hour", renotify_minutes=240),
    "analysis_backlog": AlertSpec(
        C, "warning", "motion analysis of a camera is more than backlog_minutes behind",
        for_seconds=300, renotify_minutes=240),
    "catalog_error": AlertSpec(
        C, "critical", "the catalog cannot be read or a write to it failed"),
    "audit_chain_broken": AlertSpec(
        C, "critical", "the audit log's hash chain does not verify", renotify_minutes=1440),
    "segment_corrupt": AlertSpec(
        C, "warning", "segments of a camera were quarantined or failed the re-hash in the "
        "last 24 h", renotify_minutes=1440),
    "clock_unsynchronised": AlertSpec(
        C, "warning", "the host clock is not NTP-synchronised (timestamps are evidence)",
        for_seconds=600, renotify_minutes=1440),
    "premature_deletion": AlertSpec(
        E, "critical", "footage inside min_days was deleted to make room (disk pressure)"),
    "purge_failed": AlertSpec(
        E, "critical", "a retention or pressure pass failed, or some of its actions did"),
    "export_failed": AlertSpec(E, "warning", "an evidence export failed"),
    "config_rejected": AlertSpec(
        E, "warning", "a reloaded config was invalid; the running one was kept"),
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
    url: str = Field(pattern=r"^https?://", description="Receives Alertmanager-style JSON.")
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="Per attempt.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (e.g. Authorization); "
        "never logged.",
    )


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
        if not self.starttls and (self.username or self.password_file
                                  or self.password_credential):
            raise ValueError("starttls: a password is only sent over TLS (set starttls = true, "
                             "or drop username/password_file for a local relay)")
        if self.username and not (self.password_file or self.password_credential):
            raise ValueError("username: needs password_file or password_credential")
        return self

    def password(self) -> str | None:
        return read_secret(self.password_file, self.password_credential)


def _alert_field(name: str) -> tuple[type, object]:
    spec = ALERT_DEFAULTS[name]
    settings = ConditionSettings if spec.kind == "condition" else EventSettings
    return settings, Field(default_factory=lambda: settings(**spec.defaults()),
                           description=f"{name}: {spec.about}.")


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
        30.0, gt=0, le=10_080, description="analysis_backlog when motion analysis is this "
        "far behind."
    )
    clock_sync: Literal["auto", "timesyncd", "chrony", "off"] = Field(
        "auto", description="How to learn whether the clock is NTP-synchronised: "
        "systemd-timesyncd's flag file, `chronyc tracking`, auto (whichever is present), off."
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


def read_secret(file: Path | None, credential: str | None) -> str | None:
    """A password from a file, or from a systemd credential (LoadCredential=NAME:...)."""
    if credential is not None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise OSError(f"credential {credential!r}: no $CREDENTIALS_DIRECTORY "
                          "(LoadCredential= in the unit provides it)")
        file = Path(directory) / credential
    if file is None:
        return None
    return file.read_text().rstrip("\r\n")


class CameraConfig(Model):
    name: Slug = Field(description="Unique slug naming the camera in paths and commands.")
    url: str = Field(description="rtsp://, rtsps://, http(s):// (MPEG-TS), file:// or demo://.")
    enabled: bool = Field(True, description="A disabled camera is not recorded (import works).")
    audio: bool = Field(
        False, description="Keep audio; codecs MP4 cannot hold (G.711…) are converted to AAC."
    )
    password_file: Path | None = Field(
        None, description="File holding the camera password, used instead of one in the URL."
    )
    password_credential: str | None = Field(
        None, description="systemd credential (LoadCredential=) holding the camera password, "
        "instead of password_file.",
    )
    motion: MotionOverride | None = Field(  # type: ignore[valid-type]
        None, description="Per-camera motion settings, overriding [motion] key by key."
    )
    retention: RetentionOverride | None = Field(  # type: ignore[valid-type]
        None, description="Per-camera retention, overriding [retention] key by key."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in SOURCE_SCHEMES:
            raise ValueError(
                f"unsupported scheme {scheme!r} (use one of: {', '.join(SOURCE_SCHEMES)})"
            )
        if scheme == "file" and not urlsplit(url).path:
            raise ValueError("file:// URL names no file")
        return url

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme.lower()

    @property
    def url_has_password(self) -> bool:
        return urlsplit(self.url).password is not None

    def secret(self) -> str | None:
        """The camera password, from password_file or the URL; None when there is none."""
        if self.password_file is not None or self.password_credential is not None:
            return read_secret(self.password_file, self.password_credential)
        return urlsplit(self.url).password

    def source_url(self) -> str:
        """The URL with the password filled in, for ffmpeg only; never log this value."""
        if self.password_file is None and self.password_credential is None:
            return self.url
        parts = urlsplit(self.url)
        netloc = f"{quote(parts.username or '', safe='')}:{quote(self.secret() or '', safe='')}@"
        netloc += parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Config(Model):
    timezone: str = Field(
        default_factory=system_timezone,
        description="IANA time zone people see and type times in; storage is always UTC.",
        json_schema_extra={"default_text": "the system's zone"},
    )
    storage: StorageConfig
    recording: RecordingConfig = Field(default_factory=RecordingConfig)  # type: ignore[arg-type]
    motion: MotionConfig = Field(default_factory=MotionConfig)  # type: ignore[arg-type]
    retention: RetentionSettings = Field(default_factory=RetentionSettings)  # type: ignore[arg-type]
    audit: AuditConfig = Field(default_factory=AuditConfig)  # type: ignore[arg-type]
    integrity: IntegrityConfig = Field(default_factory=IntegrityConfig)  # type: ignore[arg-type]
    http: HttpConfig = Field(default_factory=HttpConfig)  # type: ignore[arg-type]
    export: ExportConfig = Field(default_factory=ExportConfig)  # type: ignore[arg-type]
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)  # type: ignore[valid-type]
    cameras: list[CameraConfig] = Field(default_factory=list, description="The cameras.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        if not _is_zone(name):
            raise ValueError(f"unknown time zone {name!r}")
        return name

    @model_validator(mode="after")
    def _unique_cameras(self) -> Config:
        names = [c.name for c in self.cameras]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"cameras[{i}].name: duplicate camera name {name!r}")
        for i, camera in enumerate(self.cameras):
            try:
                self.retention_for(camera)
            except ValidationError as exc:
                raise ValueError(f"cameras[{i}].retention.{_describe(exc)}") from None
        return self

    @property
    def audit_path(self) -> Path:
        return self.audit.path or self.storage.catalog.parent / "audit.jsonl"

    @property
    def export_dir(self) -> Path:
        return self.export.dir or self.storage.catalog.parent / "exports"

    @property
    def signing_key_path(self) -> Path:
        """The installation's Ed25519 key for export manifests, made at first start."""
        return self.storage.catalog.parent / "signing-key.pem"

    def retention_for(self, camera: CameraConfig | str | None) -> RetentionSettings:
        """[retention] with the camera's own keys laid over it (validated as a whole)."""
        if isinstance(camera, str):
            camera = self.camera(camera)
        if camera is None or camera.retention is None:
            return self.retention
        merged = self.retention.model_dump()
        merged.update(camera.retention.model_dump(exclude_none=True))
        return RetentionSettings.model_validate(merged)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def camera(self, name: str) -> CameraConfig | None:
        return next((c for c in self.cameras if c.name == name), None)

    def motion_for(self, camera: CameraConfig | None) -> MotionSettings:
        """The global [motion] settings with the camera's own keys laid over them."""
        merged = self.motion.model_dump(exclude={"workers"})
        if camera is not None and camera.motion is not None:
            merged.update(camera.motion.model_dump(exclude_none=True))
        return MotionSettings.model_validate(merged)


class LoadedConfig(BaseModel):
    """A validated config plus where it came from and what the operator should be warned of."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    config: Config
    path: Path
    warnings: tuple[str, ...] = ()


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config, then CCVAULT_CONFIG, then the system default."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("CCVAULT_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load(path: Path) -> LoadedConfig:
    """Read, validate and resolve a config file, or raise ConfigError naming file and key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "no such config file") from None
    except OSError as exc:
        raise ConfigError(str(path), exc.strerror or str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    _resolve_relative_paths(raw, path.parent)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(str(path), _describe(exc)) from None
    check_secrets(config, path, credentials="CREDENTIALS_DIRECTORY" in os.environ)
    _check_reserves(config, path)
    return LoadedConfig(config=config, path=path, warnings=tuple(_warnings(config, path)))


def _resolve_relative_paths(raw: dict, base: Path) -> None:
    """Relative paths mean 'next to the config file', whoever starts the daemon from where."""

    def fix(table: dict, key: str) -> None:
        value = table.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            table[key] = str((base / value).resolve())

    storage = raw.get("storage")
    if isinstance(storage, dict):
        fix(storage, "catalog")
        fix(storage, "spool")
        for volume in storage.get("volumes", []) or []:
            if isinstance(volume, dict):
                fix(volume, "path")
    for camera in raw.get("cameras", []) or []:
        if isinstance(camera, dict):
            fix(camera, "password_file")
    recording = raw.get("recording")
    if isinstance(recording, dict):
        fix(recording, "ffmpeg_path")
    for table, keys in (("http", ("tls_cert", "tls_key")), ("export", ("dir",)),
                        ("audit", ("path",))):
        section = raw.get(table)
        if isinstance(section, dict):
            for key in keys:
                fix(section, key)
    alerts = raw.get("alerts")
    if isinstance(alerts, dict) and isinstance(alerts.get("email"), dict):
        fix(alerts["email"], "password_file")
        fix(alerts["email"], "ca_file")
    export = raw.get("export")
    if isinstance(export, dict) and isinstance(export.get("allowed_dirs"), list):
        export["allowed_dirs"] = [str((base / d).resolve()) if isinstance(d, str)
                                  and not os.path.isabs(d) else d for d in export["allowed_dirs"]]


def _describe(exc: ValidationError) -> str:
    """First error as `key.path[0].name: problem`, the form operators grep for."""
    messages = []
    for err in exc.errors():
        loc = key_path(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        if re.match(r"^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*: ", msg):
            loc_prefix = loc + "." if loc else ""
            messages.append(loc_prefix + msg)
        else:
            messages.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(messages)


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def check_secrets(config: Config, path: Path, credentials: bool) -> None:
    """Every password source must be readable, so a typo fails at start-up, not at 3 a.m.

    `credentials`: also read systemd credentials (the daemon does; other commands run
    outside the unit, where $CREDENTIALS_DIRECTORY does not exist, and need no passwords).
    """
    sources = [(f"cameras[{i}]", c.password_file, c.password_credential)
               for i, c in enumerate(config.cameras)]
    for i, camera in enumerate(config.cameras):
        if (camera.password_file or camera.password_credential) and \
                urlsplit(camera.url).username is None:
            key = "password_file" if camera.password_file else "password_credential"
            raise ConfigError(str(path), f"cameras[{i}].{key}: the url names no user")
    email = config.alerts.email
    if email is not None:
        sources.append(("alerts.email", email.password_file, email.password_credential))
    for where, file, credential in sources:
        if file is not None and credential is not None:
            raise ConfigError(str(path), f"{where}.password_credential: password_file is set "
                              "too (use one)")
        if file is None and (credential is None or not credentials):
            continue
        try:
            read_secret(file, credential)
        except OSError as exc:
            key = "password_file" if file is not None else "password_credential"
            raise ConfigError(str(path), f"{where}.{key}: cannot read it "
                              f"({exc.strerror or exc})") from None


def _check_reserves(config: Config, path: Path) -> None:
    """A reserve over half the disk leaves no room for footage: a typo, not a policy."""
    for i, volume in enumerate(config.storage.volumes):
        try:
            total = psutil.disk_usage(str(volume.path)).total
        except OSError:
            continue  # not there yet (created on first start) or unmounted: checked then
        if volume.reserve_bytes(total) > total // 2:
            raise ConfigError(
                str(path), f"storage.volumes[{i}].reserve_free_bytes: the reserve "
                f"({volume.reserve_bytes(total)} bytes) is more than half of the volume "
                f"({total} bytes)")


def _warnings(config: Config, path: Path) -> list[str]:
    out = []
    if any(c.url_has_password for c in config.cameras) and _others_can_read(path):
        out.append(
            f"{path}: holds camera passwords but other users can read it (chmod o-r, "
            "or move passwords to password_file)"
        )
    for i, camera in enumerate(config.cameras):
        if camera.password_file is not None and _others_can_read(camera.password_file):
            out.append(f"cameras[{i}].password_file: other users can read {camera.password_file}")
        if camera.url_has_password and camera.password_file is not None:
            out.append(f"cameras[{i}]: both the url and password_file hold a password")
    return out


def _others_can_read(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False
