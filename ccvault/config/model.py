"""The one typed configuration model: every key, its default, bounds and meaning live here.

Everything else reads a frozen `Config`; the example config is generated from these fields
(`python -m ccvault.config.example`) and a test keeps the two equal, so documentation cannot drift.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ccvault.config.access import AccessConfig, MqttPublishConfig
from ccvault.config.alerts import AlertsConfig
from ccvault.config.catalog_target import CatalogUrlError, PgCatalog, check_url, is_url
from ccvault.config.fields import (
    GIB,
    ByteSize,
    HostName,
    Model,
    Slug,
    describe,
    form,
    is_loopback,
    is_zone,
    system_timezone,
)
from ccvault.config.node import NodeConfig
from ccvault.config.policy import (
    MotionConfig,
    MotionOverride,
    MotionSettings,
    RetentionOverride,
    RetentionSettings,
)
from ccvault.config.secrets import read_secret
from ccvault.errors import UsageError
from ccvault.timefmt import parse_time

SOURCE_SCHEMES = ("rtsp", "rtsps", "http", "https", "file", "demo")


# S3 bucket names (the AWS rules that every S3 server accepts): 3-63 lowercase letters,
# digits, dots and hyphens, starting and ending with a letter or digit.
BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# A key prefix: path segments of safe characters, never "." or "..", no leading slash.
PREFIX = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,99}/){0,8}$"
S3_KEYS = (
    "endpoint",
    "bucket",
    "prefix",
    "region",
    "access_key_file",
    "secret_key_file",
    "tls_verify",
    "ca_file",
    "object_lock",
    "max_mbit",
)


class VolumeConfig(Model):
    name: Slug = Field(description="Unique name of the volume, used in commands and the catalog.")
    kind: Literal["directory", "s3"] = Field(
        "directory",
        description="directory: a local (or mounted) directory; s3: a bucket on an "
        "S3-compatible object store (role archive only; the s3 keys below).",
    )
    path: Path | None = Field(
        None,
        description="Directory that holds this volume's footage (kind directory: required).",
    )
    role: Literal["hot", "archive"] = Field(
        "hot", description="hot: new segments land here; archive: bigger, slower storage."
    )
    endpoint: str | None = Field(
        None,
        description='kind s3: the server\'s URL, "https://s3.example.net" (http only on '
        "loopback: credentials and footage never cross a network in clear text).",
    )
    bucket: str | None = Field(
        None, pattern=BUCKET, description="kind s3: the bucket (created by `volume init`)."
    )
    prefix: str = Field(
        "",
        pattern=PREFIX,
        description='kind s3: key prefix of every object, "" or ending in "/" ("site1/").',
    )
    region: str = Field(
        "us-east-1", pattern=r"^[a-z0-9-]{1,40}$", description="kind s3: the signing region."
    )
    access_key_file: Path | None = Field(
        None,
        description="kind s3: file holding the access key id; unset (with secret_key_file "
        "unset): the standard AWS credential chain (environment, ~/.aws, instance role).",
    )
    secret_key_file: Path | None = Field(
        None, description="kind s3: file holding the secret access key (mode 0600)."
    )
    tls_verify: bool = Field(True, description="kind s3: check the server's TLS certificate.")
    ca_file: Path | None = Field(
        None, description="kind s3: CA bundle the server's certificate is checked with."
    )
    object_lock: Literal["off", "governance", "compliance"] = Field(
        "off",
        description="kind s3: S3 Object Lock mode of uploaded segments (retained until their "
        "minimum retention; held footage gets a legal hold). compliance: nobody, not even "
        "an administrator, can delete a segment before its date. Needs a bucket created "
        "with Object Lock (`volume init` does so).",
    )
    max_mbit: float = Field(
        0.0, ge=0.0, le=100_000.0, description="kind s3: upload bandwidth limit; 0 = none."
    )
    require_mountpoint: bool = Field(
        False,
        description="When true the path must be a mount point, so an unmounted disk is "
        "detected instead of filling the root filesystem.",
    )
    reserve_free_percent: float = Field(
        5.0,
        ge=0.0,
        le=50.0,
        description="Free space kept on the volume, as a percentage of its size; the low-water "
        "mark is the larger of this and reserve_free_bytes.",
    )
    reserve_free_bytes: ByteSize = Field(
        GIB, description='Free space kept on the volume, in bytes (or "10 GiB").'
    )
    max_bytes: ByteSize | None = Field(
        None, description='Most footage this volume may hold (bytes or "2 TiB").'
    )

    @model_validator(mode="after")
    def _kind_keys(self) -> VolumeConfig:
        """Each kind names its own keys: a key of the other kind is a mistake, said so."""
        given = {k for k in S3_KEYS if k in self.model_fields_set}
        if self.kind == "directory":
            if self.path is None:
                raise ValueError("path: required for a directory volume")
            if given:
                raise ValueError(f"{sorted(given)[0]}: only for kind = 's3'")
            return self
        for key in ("path", "require_mountpoint", "reserve_free_percent", "reserve_free_bytes"):
            if key in self.model_fields_set:
                raise ValueError(f"{key}: not for kind = 's3' (use max_bytes for a quota)")
        if self.role != "archive":
            raise ValueError("role: an s3 volume is an archive (role = 'archive')")
        if self.endpoint is None or self.bucket is None:
            raise ValueError(f"{'endpoint' if self.endpoint is None else 'bucket'}: required")
        _check_endpoint(self.endpoint)
        if (self.access_key_file is None) != (self.secret_key_file is None):
            raise ValueError("access_key_file: give both key files, or neither (AWS chain)")
        if self.ca_file is not None and not self.tls_verify:
            raise ValueError("ca_file: given but tls_verify = false (nothing would check it)")
        return self

    @property
    def is_s3(self) -> bool:
        return self.kind == "s3"

    def reserve_bytes(self, total_bytes: int) -> int:
        """The low-water mark: absolute floors keep a percentage from meaning nothing."""
        return max(self.reserve_free_bytes, int(total_bytes * self.reserve_free_percent / 100))


def _check_endpoint(endpoint: str) -> None:
    """An http(s) URL with a host and nothing else: no user info (keys go in files), no
    query; plain http only to loopback."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("endpoint: an http(s) URL with a host, e.g. https://s3.example.net")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("endpoint: no user, password, query or fragment in the URL")
    if parts.path not in ("", "/"):
        raise ValueError("endpoint: no path (the bucket and prefix keys say where)")
    try:
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise ValueError("endpoint: bad port") from None
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("endpoint: plain http only to a loopback address; use https")


class StorageConfig(Model):
    catalog: Path | str = Field(
        description="The catalog: a SQLite file (the embedded default), or a PostgreSQL "
        'database several nodes share, as a URL without password: "postgresql://'
        'user@host[:port]/db".'
    )
    state_dir: Path | None = Field(
        None,
        description="This node's own files: audit log, signing key, exports, clip cache, "
        "lock files. Required when the catalog is a PostgreSQL URL.",
        json_schema_extra={"default_text": "the catalog file's directory"},
    )
    catalog_password_file: Path | None = Field(
        None,
        description="PostgreSQL catalog: a libpq password file (host:port:db:user:password, "
        "mode 0600); unset: libpq's PGPASSFILE or ~/.pgpass.",
    )
    catalog_sslmode: (
        Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = Field(
        None,
        description='PostgreSQL catalog: libpq sslmode ("verify-full" across a network).',
        json_schema_extra={"default_text": "libpq's: prefer"},
    )
    catalog_sslrootcert: Path | None = Field(
        None, description="PostgreSQL catalog: the CA certificate the server's is checked with."
    )
    spool: Path | None = Field(
        None,
        description="Where recorders write open segments. On another filesystem than the "
        "volume, ingest copies, fsyncs and re-hashes instead of renaming.",
        json_schema_extra={"default_text": "<first available hot volume>/.spool"},
    )
    volumes: list[VolumeConfig] = Field(min_length=1, description="Storage volumes, in order.")

    @field_validator("catalog", mode="before")
    @classmethod
    def _path_or_url(cls, value: object) -> object:
        """A URL stays text (checked: no password in it); anything else is a path."""
        if isinstance(value, str) and is_url(value):
            try:
                return check_url(value)
            except CatalogUrlError as exc:
                raise ValueError(str(exc)) from None
        return Path(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _catalog_settings(self) -> StorageConfig:
        if isinstance(self.catalog, str):
            if self.state_dir is None:
                raise ValueError(
                    "state_dir: required when catalog is a PostgreSQL URL (this node's audit "
                    "log, signing key and exports have no catalog file to sit beside)"
                )
            return self
        for key in ("catalog_password_file", "catalog_sslmode", "catalog_sslrootcert"):
            if getattr(self, key) is not None:
                raise ValueError(f"{key}: only for a PostgreSQL catalog (catalog is a file)")
        return self

    @property
    def directories(self) -> list[VolumeConfig]:
        """The directory volumes: the ones with a path on this machine."""
        return [v for v in self.volumes if not v.is_s3]

    @model_validator(mode="after")
    def _volumes_sane(self) -> StorageConfig:
        names = [v.name for v in self.volumes]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"volumes[{i}].name: duplicate volume name {name!r}")
        if not any(v.role == "hot" and not v.is_s3 for v in self.volumes):
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
        30,
        ge=1,
        le=3600,
        description="Spool rescan interval; the recorders' wake-ups are only hints.",
    )
    live_view: bool = Field(
        True,
        description="Live viewers (GET /api/cameras/NAME/live, the web page's cameras) are "
        "served the segment file each recorder is writing, read as it grows; false "
        "refuses them. Costs nothing while nobody watches.",
    )


class AuditConfig(Model):
    path: Path | None = Field(
        None,
        description="Append-only, hash-chained audit log (JSON lines).",
        json_schema_extra={"default_text": "audit.jsonl beside the catalog"},
    )
    max_bytes: ByteSize = Field(
        64 << 20,
        le=1 << 40,
        description="Past this size the log file is sealed (its last record signed) and the "
        "chain goes on in a new file; sealed files keep their first record's seq in their "
        'name (audit.jsonl.000000000001). 0 = one file forever. E.g. "64 MiB".',
    )
    journald: bool = Field(
        False,
        description="Also send each record to the systemd journal: a second copy of the chain "
        "that whoever can write the log and the catalog cannot reach.",
    )

    @field_validator("max_bytes")
    @classmethod
    def _room_for_records(cls, value: int) -> int:
        if 0 < value < 1024:
            raise ValueError("must be 0 (never rotate) or at least 1 KiB")
        return value


class IntegrityConfig(Model):
    scrub_mb_per_s: float = Field(
        20.0,
        ge=0,
        le=10_000,
        description="Pace of the background re-hash of stored segments; 0 = off.",
    )


class HttpConfig(Model):
    listen: str = Field(
        "127.0.0.1:8750",
        pattern=form(
            r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*):\d{1,5}$", "host:port, or [IPv6 address]:port"
        ),
        description="host:port of the HTTP API and web page ([v6]:port for IPv6); an empty "
        "host, 0.0.0.0 or [::] listens everywhere. Port 1-65535 (0, on loopback only: any "
        "free port, logged as http.listening). Beyond loopback it needs TLS or "
        "allow_plain_http.",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate; with tls_key, HTTPS.")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    viewer_clip_minutes: int = Field(
        30, ge=1, le=1440, description="Longest clip a viewer may stream at once."
    )
    metrics_public: bool = Field(
        False, description="Serve /metrics without credentials (otherwise any user's token)."
    )
    allow_plain_http: bool = Field(
        False,
        description="Serve plain HTTP on an address other machines can reach: tokens, "
        "cookies and footage then cross the network in clear. Without it such a listen "
        "address needs tls_cert and tls_key.",
    )
    allowed_hosts: list[HostName] = Field(
        default_factory=list,
        description="Names clients may use for this server in the Host header, besides "
        "localhost, this machine's host name and the listen host; an IP address is always "
        "accepted. Any other name is refused (400), so a DNS-rebinding page cannot reach the API.",
    )
    max_connections: int = Field(
        512,
        ge=16,
        le=16384,
        description="Open connections at most (TLS handshakes included); one more is closed "
        "at once. Each may hold two descriptors; the daemon checks at start that the open-files "
        "limit leaves a reserve for recording and ingest.",
    )
    max_connections_per_client: int = Field(
        64,
        ge=1,
        le=16384,
        description="Open connections from one client address (an IPv6 /64) at most, so one "
        "host cannot take every connection.",
    )
    request_timeout_seconds: float = Field(
        10.0,
        ge=1,
        le=300,
        description="A request's headers and body must arrive within this long of its first "
        "byte; a slower client is disconnected.",
    )
    idle_timeout_seconds: float = Field(
        5.0, ge=1, le=300, description="An idle keep-alive connection is closed after this long."
    )
    stall_timeout_seconds: float = Field(
        120.0,
        ge=1,
        le=3600,
        description="A client that takes none of an answer for this long (a download, a "
        "segment, live view: its receive window stays full) is disconnected, so a stalled "
        "reader cannot hold a connection, a file and a worker for ever; a player resumes with "
        "a range request.",
    )
    max_body_bytes: int = Field(
        65536,
        ge=1024,
        le=16 << 20,
        description="Largest request body (every route takes JSON only); a larger one is "
        "refused with 413 before authentication, without being read.",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert: tls_cert and tls_key go together")
        return self

    @model_validator(mode="after")
    def _reachable_safely(self) -> HttpConfig:
        """A port the kernel cannot bind, or tokens in clear on the network, is refused here
        rather than found out at start (or never)."""
        loopback = is_loopback(self.host)
        if not 1 <= self.port <= 65_535 and not (self.port == 0 and loopback):
            raise ValueError(
                f"listen: port {self.port} is outside 1-65535 (0 only on a loopback address)"
            )
        if not loopback and self.tls_cert is None and not self.allow_plain_http:
            raise ValueError(
                f"listen: {self.host} is reachable from other machines but http.tls_cert is "
                "not set: tokens and footage would cross the network in clear (set "
                "http.tls_cert and http.tls_key, or http.allow_plain_http = true)"
            )
        return self

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0] or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class ExportConfig(Model):
    dir: Path | None = Field(
        None,
        description="Where export bundles go by default; bundles here are footage too "
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
        None,
        description="systemd credential (LoadCredential=) holding the camera password, "
        "instead of password_file.",
    )
    motion: MotionOverride | None = Field(  # type: ignore[valid-type]
        None, description="Per-camera motion settings, overriding [motion] key by key."
    )
    retention: RetentionOverride | None = Field(  # type: ignore[valid-type]
        None, description="Per-camera retention, overriding [retention] key by key."
    )
    installed: datetime | date | None = Field(
        None,
        description="When the camera was put up: a TOML date (midnight) or date-time, in "
        "the configured zone unless it has an offset. Imports of footage from before it "
        "are refused (ccvault import --allow-time overrides, audited).",
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
    node: NodeConfig = Field(default_factory=NodeConfig)  # type: ignore[arg-type]
    storage: StorageConfig
    recording: RecordingConfig = Field(default_factory=RecordingConfig)  # type: ignore[arg-type]
    motion: MotionConfig = Field(default_factory=MotionConfig)  # type: ignore[arg-type]
    retention: RetentionSettings = Field(default_factory=RetentionSettings)  # type: ignore[arg-type]
    audit: AuditConfig = Field(default_factory=AuditConfig)  # type: ignore[arg-type]
    integrity: IntegrityConfig = Field(default_factory=IntegrityConfig)  # type: ignore[arg-type]
    http: HttpConfig = Field(default_factory=HttpConfig)  # type: ignore[arg-type]
    export: ExportConfig = Field(default_factory=ExportConfig)  # type: ignore[arg-type]
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)  # type: ignore[valid-type]
    access: AccessConfig = Field(default_factory=AccessConfig)  # type: ignore[arg-type]
    mqtt: MqttPublishConfig | None = Field(
        None, description="[mqtt]: publish ccvault's events (motion, alerts, visits)."
    )
    cameras: list[CameraConfig] = Field(default_factory=list, description="The cameras.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        if not is_zone(name):
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
                raise ValueError(f"cameras[{i}].retention.{describe(exc)}") from None
            try:
                self.installed_ms(camera)
            except UsageError as exc:
                raise ValueError(f"cameras[{i}].installed: {exc.problem}") from None
        self._rooms_watch_configured_cameras()
        self._visits_outlive_their_footage()
        return self

    def _visits_outlive_their_footage(self) -> None:
        """A visit keeps its footage access_days: the visit itself must be kept that long."""
        for name in (None, *(c.name for c in self.cameras)):
            days = (self.retention_for(name) if name else self.retention).access_days
            if days is not None and days > self.access.access_log_days:
                where = f"cameras {name!r} retention" if name else "retention"
                raise ValueError(
                    f"access.access_log_days: shorter than {where}.access_days "
                    f"({self.access.access_log_days:g} < {days:g}); the visits "
                    "that keep footage would be purged before it"
                )

    def _rooms_watch_configured_cameras(self) -> None:
        seen: dict[str, str] = {}
        for i, room in enumerate(self.access.rooms):
            for j, name in enumerate(room.cameras):
                if self.camera(name) is None:
                    raise ValueError(
                        f"access.rooms[{i}].cameras[{j}]: no camera {name!r} in [[cameras]]"
                    )
                if name in seen:
                    raise ValueError(
                        f"access.rooms[{i}].cameras[{j}]: camera {name!r} already "
                        f"watches room {seen[name]!r} (one room per camera)"
                    )
                seen[name] = room.name

    def room_of(self, camera: str) -> str | None:
        """The room a camera watches, if any."""
        return next((r.name for r in self.access.rooms if camera in r.cameras), None)

    @property
    def catalog_target(self) -> Path | PgCatalog:
        """What `catalog.db.connect` opens: the SQLite file, or the PostgreSQL database with
        how to authenticate and encrypt."""
        storage = self.storage
        if isinstance(storage.catalog, Path):
            return storage.catalog
        return PgCatalog(
            storage.catalog,
            storage.catalog_password_file,
            storage.catalog_sslmode,
            storage.catalog_sslrootcert,
        )

    @property
    def state_dir(self) -> Path:
        """This node's own files (the catalog file's directory unless set)."""
        if self.storage.state_dir is not None:
            return self.storage.state_dir
        assert isinstance(self.storage.catalog, Path)  # a URL requires state_dir
        return self.storage.catalog.parent

    @property
    def lock_base(self) -> Path:
        """The path this node's lock files are named after (`<base>.daemon.lock`, ...): the
        SQLite catalog itself, or `catalog` in state_dir for a PostgreSQL one."""
        catalog = self.storage.catalog
        return catalog if isinstance(catalog, Path) else self.state_dir / "catalog"

    @property
    def audit_path(self) -> Path:
        return self.audit.path or self.state_dir / "audit.jsonl"

    @property
    def export_dir(self) -> Path:
        return self.export.dir or self.state_dir / "exports"

    @property
    def signing_key_path(self) -> Path:
        """The installation's Ed25519 key for export manifests, made at first start."""
        return self.state_dir / "signing-key.pem"

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

    def installed_ms(self, camera: CameraConfig) -> int | None:
        """The camera's `installed` as UTC ms (a date or a local time read in the configured
        zone, a DST-ambiguous one refused like any typed time); None when not set."""
        if camera.installed is None:
            return None
        return parse_time(camera.installed.isoformat(), self.tz, 0, "installed")

    def camera(self, name: str) -> CameraConfig | None:
        return next((c for c in self.cameras if c.name == name), None)

    def motion_for(self, camera: CameraConfig | None) -> MotionSettings:
        """The global [motion] settings with the camera's own keys laid over them."""
        if camera is None:
            return self.motion.settings({}, counts_people=False)
        override = camera.motion.model_dump(exclude_none=True) if camera.motion else {}
        # People are counted where the door log can be held against the counts.
        return self.motion.settings(override, self.room_of(camera.name) is not None)
