"""The installation's Ed25519 key file: export manifests and the audit log's checkpoints are
signed with it, so a bundle or a log proves which ccvault made it and that nothing in it
changed since.

The private key is PKCS8 PEM, mode 0600, made once: written to a temporary file, fsynced,
then hard-linked into place — `link(2)` fails instead of replacing, so two processes racing at
first use agree on one key and the loser reads the winner's. Verification needs only the
public key (raw, base64 in manifests and checkpoints). Its birth is audited by
`evidence.signing.installation_key`; this module only handles the file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ccvault.errors import UsageError
from ccvault.host.durable import fsync_dir, keep_private, make_dirs, open_private

ALGORITHM = "Ed25519"


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    path: Path

    @property
    def public_raw(self) -> bytes:
        return public_raw(self.private.public_key())

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(raw: bytes) -> str:
    """SHA-256 of the raw 32-byte public key, hex: what the audit log and people compare."""
    return hashlib.sha256(raw).hexdigest()


def load_or_create(path: Path) -> tuple[SigningKey, bool]:
    """The key at path, made first if there is none; True when this call made it."""
    try:
        return SigningKey(load_private(path), path), False
    except FileNotFoundError:
        pass
    make_dirs(path.parent)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        created = True
    except FileExistsError:
        created = False  # another process made it first: use theirs
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
    return SigningKey(load_private(path), path), created


def load_private(path: Path) -> Ed25519PrivateKey:
    data = path.read_bytes()
    if os.access(path, os.W_OK):  # the key's owner (a reader is only checking)
        keep_private(path)
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"signing key {path}", "is not an Ed25519 key")
    return key


def verify(raw_public: bytes, data: bytes, signature: bytes) -> bool:
    try:
        _public_key(raw_public).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=16)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    """Loading a public key costs milliseconds, checking a signature with it a tenth of one:
    a year of audit checkpoints (thousands, one key) is checked with one load."""
    return Ed25519PublicKey.from_public_bytes(raw)


def installation_public_key(path: Path) -> bytes | None:
    """The installation key's public half without creating one (None: there is none yet).
    Readers without permission to read the private key get PermissionError."""
    try:
        return public_raw(load_private(path).public_key())
    except FileNotFoundError:
        return None


class KeyFile:
    """The key at a path, loaded at first use and never made here: the daemon makes it at its
    first start (audited). A process that cannot read it (an auditor, a CLI user other than
    the daemon's) gets None and signs nothing; the daemon signs what it leaves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: SigningKey | None = None
        self._lock = threading.Lock()

    def signer(self) -> SigningKey | None:
        with self._lock:
            if self._key is None:
                try:
                    self._key = SigningKey(load_private(self.path), self.path)
                except (OSError, ValueError, UsageError):
                    return None
            return self._key
