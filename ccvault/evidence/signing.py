"""The installation's Ed25519 key: export manifests are signed with it, so a bundle proves
which ccvault made it and that nothing in it changed since.

The private key is PKCS8 PEM at `Config.signing_key_path`, mode 0600, made once: written to a
temporary file, fsynced, then hard-linked into place — `link(2)` fails instead of replacing,
so two processes racing at first use agree on one key and the loser reads the winner's.
Verification needs only the public key, which every manifest carries (raw, base64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ccvault.errors import UsageError
from ccvault.host.durable import fsync_dir, keep_private, make_dirs, open_private

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter

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
        return SigningKey(_load(path), path), False
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
    return SigningKey(_load(path), path), created


def _load(path: Path) -> Ed25519PrivateKey:
    data = path.read_bytes()
    if os.access(path, os.W_OK):  # the key's owner (a reader is only checking)
        keep_private(path)
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"signing key {path}", "is not an Ed25519 key")
    return key


def verify(raw_public: bytes, data: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(raw_public).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def parse_public_key(text: str) -> bytes:
    """A public key as people pass it: PEM (public or private key, or a file holding one),
    or the raw 32 bytes as base64 or hex. Returns the raw bytes."""
    value = text.strip()
    candidate = Path(value)
    if "\n" not in value and len(value) < 4096 and candidate.is_file():
        value = candidate.read_text().strip()
    if value.startswith("-----BEGIN"):
        data = value.encode()
        try:
            if "PRIVATE KEY" in value:
                private = serialization.load_pem_private_key(data, password=None)
                if isinstance(private, Ed25519PrivateKey):
                    return public_raw(private.public_key())
            else:
                public = serialization.load_pem_public_key(data)
                if isinstance(public, Ed25519PublicKey):
                    return public_raw(public)
        except ValueError:
            pass
        raise UsageError("--key", "not an Ed25519 key in PEM form")
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            raw = decode(value)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 32:
            return raw
    raise UsageError("--key", "give a PEM file, or the raw 32-byte public key in base64 or hex")


def installation_key(path: Path, writer: CatalogWriter, actor: str, now_ms: int) -> SigningKey:
    """Load the installation's key, making it at first use; its birth is audited once (by the
    process whose link won), so the audit log names every key this installation signed with."""
    key, created = load_or_create(path)
    if created:
        writer.record_event(
            actor,
            "signing.key_created",
            "signing-key",
            {
                "algorithm": ALGORITHM,
                "fingerprint": key.fingerprint,
                "public_key": key.public_b64,
                "path": str(path),
            },
            now_ms,
        )
    return key


def installation_public_key(path: Path) -> bytes | None:
    """The installation key's public half without creating one (None: there is none yet).
    Readers without permission to read the private key get PermissionError."""
    try:
        return public_raw(_load(path).public_key())
    except FileNotFoundError:
        return None
