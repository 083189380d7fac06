"""The installation's Ed25519 key as evidence sees it: export manifests are signed with it, so
a bundle proves which ccvault made it and that nothing in it changed since.

The key file itself (made once, 0600, never replaced; loading, signing, verifying) is
`host/keys.py`, so that the audit log's checkpoints below the evidence layer sign with the same
key; its names are re-exported here for the evidence code and commands that use them. This
module adds what is evidence's own: parsing a public key people pass, and the key's audited
birth.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ccvault.errors import UsageError
from ccvault.host.keys import (
    ALGORITHM,
    SigningKey,
    fingerprint,
    installation_public_key,
    load_or_create,
    public_raw,
    verify,
)

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter

__all__ = [
    "ALGORITHM",
    "SigningKey",
    "fingerprint",
    "installation_key",
    "installation_public_key",
    "load_or_create",
    "parse_fingerprint",
    "parse_public_key",
    "public_key_from_pem",
    "public_raw",
    "verify",
]


def public_key_from_pem(data: bytes) -> bytes:
    """The raw bytes of an Ed25519 public key in PEM form (a bundle's signer.pem, a --key
    file); ValueError for anything else."""
    try:
        public = serialization.load_pem_public_key(data)
    except (UnsupportedAlgorithm, TypeError) as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return public_raw(public)


def parse_fingerprint(text: str) -> str:
    """A key fingerprint as people pass it (`--fingerprint`): 64 hex digits, any case, with or
    without colons or spaces between them. Never a prefix: that would trust any key sharing it."""
    value = re.sub(r"[\s:]", "", text).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise UsageError("--fingerprint", "give the key's whole SHA-256 fingerprint: 64 hex digits")
    return value


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
            if "PRIVATE KEY" not in value:
                return public_key_from_pem(data)
            private = serialization.load_pem_private_key(data, password=None)
            if isinstance(private, Ed25519PrivateKey):
                return public_raw(private.public_key())
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
