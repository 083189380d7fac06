"""From a file to a validated `Config`: TOML, paths relative to the file, errors that name the
file and the key, and the checks that need the machine (reserves, secrets, where things are:
`places`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
)

from ccvault.config.catalog_target import is_url
from ccvault.config.fields import describe
from ccvault.config.file import read_toml
from ccvault.config.model import Config
from ccvault.config.places import overlap, shared_filesystems
from ccvault.config.secrets import check_secrets, password_warnings
from ccvault.errors import ConfigError


class LoadedConfig(BaseModel):
    """A validated config plus where it came from and what the operator should be warned of."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)
    config: Config
    path: Path
    warnings: tuple[str, ...] = ()


def load(path: Path) -> LoadedConfig:
    """Read, validate and resolve a config file, or raise ConfigError naming file and key."""
    raw = read_toml(path)
    _resolve_relative_paths(raw, path.parent)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(str(path), describe(exc)) from None
    check_secrets(config, path, credentials="CREDENTIALS_DIRECTORY" in os.environ)
    _check_reserves(config, path)
    _check_catalog_password(config, path)
    problem = overlap(config)
    if problem:
        raise ConfigError(str(path), problem)
    warnings = [*password_warnings(config, path), *shared_filesystems(config)]
    return LoadedConfig(config=config, path=path, warnings=tuple(warnings))


def _resolve_relative_paths(raw: dict, base: Path) -> None:
    """Relative paths mean 'next to the config file', whoever starts the daemon from where."""

    def fix(table: dict, key: str) -> None:
        value = table.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value) and not is_url(value):
            table[key] = str((base / value).resolve())

    storage = raw.get("storage")
    if isinstance(storage, dict):
        for key in (
            "catalog",
            "spool",
            "state_dir",
            "catalog_password_file",
            "catalog_sslrootcert",
        ):
            fix(storage, key)
        for volume in storage.get("volumes", []) or []:
            if isinstance(volume, dict):
                fix(volume, "path")
    for camera in raw.get("cameras", []) or []:
        if isinstance(camera, dict):
            fix(camera, "password_file")
    recording = raw.get("recording")
    if isinstance(recording, dict):
        fix(recording, "ffmpeg_path")
    for table, keys in (
        ("http", ("tls_cert", "tls_key")),
        ("export", ("dir",)),
        ("audit", ("path",)),
        ("node", ("peer_token_file", "ca_file")),
    ):
        section = raw.get(table)
        if isinstance(section, dict):
            for key in keys:
                fix(section, key)
    for parent, table, keys in (
        (raw.get("access"), "mqtt", ("password_file", "ca_file")),
        (raw.get("access"), "file", ("path",)),
        (raw, "mqtt", ("password_file", "ca_file")),
    ):
        section = parent.get(table) if isinstance(parent, dict) else None
        if isinstance(section, dict):
            for key in keys:
                fix(section, key)
    alerts = raw.get("alerts")
    if isinstance(alerts, dict) and isinstance(alerts.get("email"), dict):
        fix(alerts["email"], "password_file")
        fix(alerts["email"], "ca_file")
    export = raw.get("export")
    if isinstance(export, dict) and isinstance(export.get("allowed_dirs"), list):
        export["allowed_dirs"] = [
            str((base / d).resolve()) if isinstance(d, str) and not os.path.isabs(d) else d
            for d in export["allowed_dirs"]
        ]


def _check_catalog_password(config: Config, path: Path) -> None:
    """libpq silently skips a password file others can read (and one that is missing): the
    connection would then fail as "no password supplied", far from the cause. Say it here."""
    passfile = config.storage.catalog_password_file
    if passfile is None:
        return
    key = "storage.catalog_password_file"
    try:
        mode = passfile.stat().st_mode
    except OSError as exc:
        raise ConfigError(str(path), f"{key}: {passfile}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(
            str(path), f"{key}: {passfile} is readable by others (mode {mode & 0o777:o}): 0600"
        )


def _check_reserves(config: Config, path: Path) -> None:
    """A reserve over half the disk leaves no room for footage: a typo, not a policy."""
    for i, volume in enumerate(config.storage.volumes):
        if volume.path is None:
            continue  # an s3 bucket: quotas by max_bytes only
        try:
            total = shutil.disk_usage(volume.path).total
        except OSError:
            continue  # not there yet (created on first start) or unmounted: checked then
        if volume.reserve_bytes(total) > total // 2:
            raise ConfigError(
                str(path),
                f"storage.volumes[{i}].reserve_free_bytes: the reserve "
                f"({volume.reserve_bytes(total)} bytes) is more than half of the volume "
                f"({total} bytes)",
            )
