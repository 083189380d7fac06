"""Passwords and credentials: read from files or systemd credentials, checked at start-up,
and warned about when other users could read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ccvault.errors import ConfigError

if TYPE_CHECKING:
    from ccvault.config.model import Config


def read_secret(file: Path | None, credential: str | None) -> str | None:
    """A password from a file, or from a systemd credential (LoadCredential=NAME:...)."""
    if credential is not None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise OSError(
                f"credential {credential!r}: no $CREDENTIALS_DIRECTORY "
                "(LoadCredential= in the unit provides it)"
            )
        file = Path(directory) / credential
    if file is None:
        return None
    return file.read_text().rstrip("\r\n")


def check_secrets(config: Config, path: Path, credentials: bool) -> None:
    """Every password source must be readable, so a typo fails at start-up, not at 3 a.m.

    `credentials`: also read systemd credentials (the daemon does; other commands run
    outside the unit, where $CREDENTIALS_DIRECTORY does not exist, and need no passwords).
    """
    sources = [
        (f"cameras[{i}]", c.password_file, c.password_credential)
        for i, c in enumerate(config.cameras)
    ]
    for i, camera in enumerate(config.cameras):
        if (camera.password_file or camera.password_credential) and urlsplit(
            camera.url
        ).username is None:
            key = "password_file" if camera.password_file else "password_credential"
            raise ConfigError(str(path), f"cameras[{i}].{key}: the url names no user")
    email = config.alerts.email
    if email is not None:
        sources.append(("alerts.email", email.password_file, email.password_credential))
    for where, broker in (("access.mqtt", config.access.mqtt), ("mqtt", config.mqtt)):
        if broker is not None:
            sources.append((where, broker.password_file, None))
    _check_node_files(config, path)
    for i, volume in enumerate(config.storage.volumes):  # an s3 volume's key files
        sources += [
            (f"storage.volumes[{i}].{key}", getattr(volume, key), None)
            for key in ("access_key_file", "secret_key_file")
            if getattr(volume, key) is not None
        ]
    for where, file, credential in sources:
        if file is not None and credential is not None:
            raise ConfigError(
                str(path), f"{where}.password_credential: password_file is set too (use one)"
            )
        if file is None and (credential is None or not credentials):
            continue
        try:
            read_secret(file, credential)
        except OSError as exc:
            key = "password_file" if file is not None else "password_credential"
            if where.startswith("storage."):
                where, _, key = where.rpartition(".")
            raise ConfigError(
                str(path), f"{where}.{key}: cannot read it ({exc.strerror or exc})"
            ) from None


def _check_node_files(config: Config, path: Path) -> None:
    """The token and CA a node reaches the others with: a typo fails at start-up, not when
    someone first plays another node's footage."""
    for key in ("peer_token_file", "ca_file"):
        file = getattr(config.node, key)
        if file is None:
            continue
        try:
            text = read_secret(file, None)
        except OSError as exc:
            raise ConfigError(
                str(path), f"node.{key}: cannot read it ({exc.strerror or exc})"
            ) from None
        if not (text or "").strip():
            raise ConfigError(str(path), f"node.{key}: {file} is empty")


def password_warnings(config: Config, path: Path) -> list[str]:
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
