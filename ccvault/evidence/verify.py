"""Checking a bundle against its own manifest and, when a key is given, its signer.

What a receiver without ccvault can check with standard tools is in the bundle's README; this
is ccvault's own check (`ccvault verify-export`, and an export job adopting a bundle a crash
left complete)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccvault.evidence import signing
from ccvault.evidence.bundle import MANIFEST, SIGNATURE
from ccvault.storage.media import sha256_file


@dataclass
class Verification:
    ok: bool
    problems: list[str]  # in the order found: the first names the first mismatch
    files: int
    manifest_sha256: str | None
    signed_by: str | None  # fingerprint of the key in the manifest
    expected_key: str | None  # fingerprint the signer was checked against; None: not checked

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "files": self.files,
            "manifest_sha256": self.manifest_sha256,
            "signed_by": self.signed_by,
            "expected_key": self.expected_key,
            "signer_checked": self.expected_key is not None,
        }


def verify(bundle: Path, expected_key: bytes | None = None) -> Verification:
    """Check a bundle against its own manifest: the signature (with the manifest's public
    key), the signer (when expected_key is given), every file's size and SHA-256, and that no
    file is missing or extra. A manifest re-signed with another key passes the first check
    and fails the second, which is why the expected key matters."""
    result = Verification(
        False, [], 0, None, None, signing.fingerprint(expected_key) if expected_key else None
    )
    try:
        body = (bundle / MANIFEST).read_bytes()
        signature = (bundle / SIGNATURE).read_bytes()
        manifest = json.loads(body)
        raw_key = base64.b64decode(manifest["signature"]["public_key"], validate=True)
        listed = {str(f["name"]): f for f in manifest["files"]}
    except FileNotFoundError as exc:
        result.problems.append(f"{Path(exc.filename or '?').name}: missing")
        return result
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        result.problems.append(f"{MANIFEST}: unreadable or incomplete ({exc})")
        return result
    result.manifest_sha256 = sha256_file(bundle / MANIFEST)
    result.signed_by = signing.fingerprint(raw_key)
    if not signing.verify(raw_key, body, signature):
        result.problems.append(
            f"{SIGNATURE}: the signature does not match {MANIFEST} "
            "(the manifest was edited, or the signature replaced)"
        )
    if expected_key is not None and raw_key != expected_key:
        result.problems.append(
            f"signer: {MANIFEST} is signed by key {result.signed_by[:16]}…, "
            f"not the expected key {result.expected_key[:16]}… (re-signed "
            "elsewhere)"
        )
    present = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if not p.is_dir()}
    for name, entry in listed.items():
        path = bundle / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            result.problems.append(f"{name}: the manifest names a path outside the bundle")
        elif name not in present:
            result.problems.append(f"{name}: missing from the bundle")
        elif path.stat().st_size != entry.get("bytes"):
            result.problems.append(
                f"{name}: {path.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
            )
        elif sha256_file(path) != entry.get("sha256"):
            result.problems.append(f"{name}: SHA-256 differs from the manifest (the file changed)")
        else:
            result.files += 1
    for name in sorted(present - listed.keys() - {MANIFEST, SIGNATURE}):
        result.problems.append(f"{name}: extra file, not in the manifest")
    result.ok = not result.problems
    return result
