"""Checking a bundle against its own manifest, and its signer against a key the checker trusts.

A valid signature proves only that the bundle is unchanged since *someone* signed it; anyone
can re-sign an edited, even emptied, bundle with their own key. So a bundle verifies only
against a key the checker names (`verify-export --key`, `--fingerprint`, or the installation's
own): without one the answer is "not verified", never "ok". A bundle is input from anyone — its
own signer may be the adversary — so nothing in it is taken on faith either: the manifest must
be small, JSON, and list footage (at least one original segment and the clip) under names a
bundle holds, each once, with sizes that are sizes; every file must be a regular file inside
the bundle (no link, device or pipe is followed or read); nothing may be missing or extra.

What a receiver without ccvault can check with standard tools is in the bundle's README
(`evidence.receiver`); this is ccvault's own check (`ccvault verify-export`, and an export
job adopting a bundle a crash left complete), which covers that too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ccvault.config.places import MANIFEST, SIGNATURE
from ccvault.evidence import receiver, signing, visit
from ccvault.evidence.manifest import CLIP, FORMAT, FORMATS, SEGMENTS, VISIT_FORMAT
from ccvault.storage.media import sha256_file

MAX_MANIFEST_BYTES = 64 << 20  # a 744-hour export of one-minute segments is ~15 MB
MAX_SMALL_BYTES = 1 << 20  # a signature, signer.pem, README.txt
MAX_FILE_BYTES = 1 << 50  # a listed size past a pebibyte is not a size
SEGMENT_NAME = re.compile(rf"{SEGMENTS}/[A-Za-z0-9_-][A-Za-z0-9._-]{{0,200}}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
VISIT_CLIP = re.compile(r"clip-[a-z0-9][a-z0-9_-]{0,62}\.mp4")  # clip_name(<camera slug>)
WITH_RECEIVER_FILES = (FORMAT, VISIT_FORMAT)
RECEIVER_FILES = (receiver.SUMS, receiver.SUMS_SIG, receiver.SIGNER, receiver.README)


class Signer(StrEnum):
    """Who signed the manifest, as far as the checker's trust goes."""

    TRUSTED = "trusted"  # the key the checker trusts
    UNKNOWN = "unknown_key"  # another key: re-signed elsewhere, or another installation
    NO_TRUSTED_KEY = "no_trusted_key"  # the checker named no key: nothing is proven


class Unreadable(Exception):
    """The manifest (or a file every check needs) cannot be read as one: the check ends."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One footage file as the manifest lists it, its name and fields already checked."""

    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    format: str
    key: bytes  # the raw public key the manifest names as its signer
    files: list[Any]  # as found: checked entry by entry
    key_problems: list[str]  # the signature section contradicting itself
    data: dict[str, Any] = field(default_factory=dict)  # the whole manifest, as found


@dataclass
class Verification:
    ok: bool
    problems: list[str]  # in the order found: the first names the first mismatch
    files: int
    manifest_sha256: str | None
    signed_by: str | None  # fingerprint of the key in the manifest
    trusted: str | None  # fingerprint of the key the checker trusts; None: none given
    signer: Signer | None = None
    format: str | None = None
    entries: list[Entry] = field(default_factory=list)
    visit: dict[str, Any] | None = None  # a visit's bundle: the visit, as signed
    access_events: list[Any] | None = None  # and its room's door events, as signed

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "files": self.files,
            "manifest_sha256": self.manifest_sha256,
            "format": self.format,
            "signed_by": self.signed_by,
            "signer": self.signer,
            "expected_key": self.trusted,
            "signer_checked": self.trusted is not None,
            "visit": self.visit,  # null but in a visit's bundle (format 3)
            "access_events": self.access_events,
        }


def verify(bundle: Path, trusted: str | None) -> Verification:
    """Check a bundle: the manifest's signature, its signer against `trusted` (a key
    fingerprint; None fails the check: a signature alone proves nothing), every listed file's
    size and SHA-256, that footage is there and nothing is missing or extra, and — from format
    2 on — the receiver's SHA256SUMS, its signature and signer.pem."""
    result = Verification(False, [], 0, None, None, trusted)
    try:
        body = read_small(bundle, MANIFEST, MAX_MANIFEST_BYTES)
        signature = read_small(bundle, SIGNATURE, MAX_SMALL_BYTES)
        manifest = parse(body)
    except Unreadable as exc:
        result.problems.append(str(exc))
        return result
    result.manifest_sha256 = hashlib.sha256(body).hexdigest()
    result.format = manifest.format
    result.signed_by = signing.fingerprint(manifest.key)
    if not signing.verify(manifest.key, body, signature):
        result.problems.append(
            f"{SIGNATURE}: the signature does not match {MANIFEST} "
            "(the manifest was edited, or the signature replaced)"
        )
    result.signer = _check_signer(result)
    result.problems += manifest.key_problems
    result.entries = entries(manifest.files, result.problems, manifest.format)
    _check_footage(bundle, result)
    _check_extras(bundle, manifest.format, result)
    if manifest.format in WITH_RECEIVER_FILES:
        _check_receiver_files(bundle, manifest, body, result)
    if manifest.format == VISIT_FORMAT:
        result.problems += visit.manifest_problems(manifest.data)
        result.visit = manifest.data.get("visit")
        result.access_events = manifest.data.get("access_events")
    result.ok = not result.problems
    return result


def read_small(bundle: Path, name: str, limit: int) -> bytes:
    """A file every check needs, read whole: a regular file (never a link, pipe or device)
    no larger than `limit`; Unreadable otherwise."""
    path = bundle / name
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(f"{name}: not a regular file (a link, a directory or a device)")
        if info.st_size > limit:
            raise Unreadable(f"{name}: {info.st_size} bytes, more than a bundle's ({limit})")
        with open(path, "rb") as f:
            return f.read(limit + 1)[:limit]
    except FileNotFoundError:
        raise Unreadable(f"{name}: missing") from None
    except OSError as exc:
        raise Unreadable(f"{name}: cannot be read ({exc.strerror})") from None


def parse(body: bytes) -> Manifest:
    """The manifest's format, signer and file list; Unreadable when it is not a manifest."""
    try:
        data = json.loads(body, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        raise Unreadable(f"{MANIFEST}: not JSON ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise Unreadable(f"{MANIFEST}: not a JSON object")
    if data.get("format") not in FORMATS:
        raise Unreadable(f"{MANIFEST}: format {shown(data.get('format'))} is not a bundle's")
    section = data.get("signature")
    files = data.get("files")
    if not isinstance(section, dict) or not isinstance(files, list):
        raise Unreadable(f"{MANIFEST}: no signature section or file list")
    try:
        key = base64.b64decode(str(section.get("public_key")), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise Unreadable(f"{MANIFEST}: signature.public_key is not an Ed25519 public key")
    return Manifest(data["format"], key, files, _key_problems(section, key), data)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A key given twice is read one way here and maybe the other way by another reader: no
    manifest ccvault writes has one, so it is refused, never resolved."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {shown(key)} is given twice")
        out[key] = value
    return out


def _key_problems(section: dict[str, Any], key: bytes) -> list[str]:
    """The section names its key three ways; they must all be the same key."""
    problems = []
    if section.get("public_key_sha256", signing.fingerprint(key)) != signing.fingerprint(key):
        problems.append(f"{MANIFEST}: signature.public_key_sha256 is not public_key's")
    pem = section.get("public_key_pem")
    if pem is not None and _pem_key(str(pem).encode()) != key:
        problems.append(f"{MANIFEST}: signature.public_key_pem is not public_key")
    return problems


def _pem_key(pem: bytes) -> bytes | None:
    try:
        return signing.public_key_from_pem(pem)
    except ValueError:
        return None


def _check_signer(result: Verification) -> Signer:
    signed_by = result.signed_by
    if result.trusted is None:
        result.problems.append(
            f"signer: no trusted key given; this bundle is signed by key {signed_by} — pass "
            "--fingerprint F with the fingerprint `ccvault signing-key` prints at the "
            "installation that made it (or --key)"
        )
        return Signer.NO_TRUSTED_KEY
    if signed_by != result.trusted:
        result.problems.append(
            f"signer: signed by an unknown key, fingerprint {signed_by} (the trusted key is "
            f"{result.trusted}: the bundle was re-signed elsewhere, or made by another "
            "installation)"
        )
        return Signer.UNKNOWN
    return Signer.TRUSTED


def entries(files: list[Any], problems: list[str], fmt: str = FORMAT) -> list[Entry]:
    """The manifest's file list, each entry checked: a name a bundle holds (clip.mp4 — in a
    visit's bundle clip-<camera>.mp4 — or segments/<file>, never a path out of it), listed
    once, a size that is one, a SHA-256."""
    out: list[Entry] = []
    seen: set[str] = set()
    for i, item in enumerate(files):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            problems.append(f"{MANIFEST}: files[{i}] is not a file entry")
        elif not is_clip(name, fmt) and not SEGMENT_NAME.fullmatch(name):
            problems.append(
                f"{shown(name)}: the manifest names a path outside the bundle's footage "
                f"(only {_clip_text(fmt)} and {SEGMENTS}/<file>)"
            )
        elif name in seen:
            problems.append(f"{name}: listed twice in the manifest")
        elif not _is_size(item.get("bytes")):
            problems.append(f'{name}: "bytes" is {shown(item.get("bytes"))}, not a size')
        elif not isinstance(item.get("sha256"), str) or not SHA256_HEX.fullmatch(item["sha256"]):
            problems.append(f'{name}: "sha256" is not 64 lowercase hex digits')
        else:
            out.append(Entry(name, item["bytes"], item["sha256"]))
        if isinstance(name, str):
            seen.add(name)
    return out


def is_clip(name: str, fmt: str | None) -> bool:
    """A joined clip's name in a bundle of this format."""
    return bool(VISIT_CLIP.fullmatch(name)) if fmt == VISIT_FORMAT else name == CLIP


def _clip_text(fmt: str | None) -> str:
    return "clip-<camera>.mp4" if fmt == VISIT_FORMAT else CLIP


def _is_size(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_FILE_BYTES


def shown(value: Any) -> str:
    """A value from the bundle, safe to print: short, and no control characters that could
    forge lines of this report."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:80] if text.isprintable() and text.strip() == text else repr(text[:80])


def _check_footage(bundle: Path, result: Verification) -> None:
    """Every listed file as listed; at least one original segment and the clip."""
    segments = [e for e in result.entries if not is_clip(e.name, result.format)]
    readable = _real_dir(bundle / SEGMENTS)  # a link there could lead anywhere
    if segments and not readable:
        result.problems.append(f"{SEGMENTS}: not a directory (a link, or missing)")
    for entry in (e for e in result.entries if readable or is_clip(e.name, result.format)):
        problem = _check_file(bundle / entry.name, entry)
        if problem is None:
            result.files += 1
        else:
            result.problems.append(f"{entry.name}: {problem}")
    if not segments:
        result.problems.append(
            f"{MANIFEST}: lists no segment (a bundle holds the original files of its footage)"
        )
    if not any(is_clip(e.name, result.format) for e in result.entries):
        result.problems.append(f"{MANIFEST}: lists no {_clip_text(result.format)}")


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _check_file(path: Path, entry: Entry) -> str | None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "missing from the bundle"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a link, a directory or a device): not read"
    if info.st_size != entry.bytes:
        return f"{info.st_size} bytes, the manifest says {entry.bytes}"
    if sha256_file(path) != entry.sha256:
        return "SHA-256 differs from the manifest (the file changed)"
    return None


def _check_extras(bundle: Path, fmt: str, result: Verification) -> None:
    """Anything in the bundle that no list accounts for. Links are reported, never
    followed; only the real `segments` directory is entered."""
    allowed = {e.name for e in result.entries} | {MANIFEST, SIGNATURE}
    if fmt in WITH_RECEIVER_FILES:
        allowed |= set(RECEIVER_FILES)
    for root, dirs, files in os.walk(bundle):
        base = Path(root).relative_to(bundle)
        names = [base / d for d in dirs] + [base / f for f in files]
        dirs[:] = [d for d in dirs if (base / d).as_posix() == SEGMENTS]
        for rel in sorted(names):
            name = rel.as_posix()
            if name == SEGMENTS and _real_dir(bundle / SEGMENTS):
                continue
            if name not in allowed:
                result.problems.append(f"{shown(name)}: extra file, not in the manifest")


def _check_receiver_files(
    bundle: Path, manifest: Manifest, body: bytes, result: Verification
) -> None:
    """signer.pem is the manifest's key; SHA256SUMS is signed by it and lists exactly the
    bundle's files with the hashes the manifest gives (and the manifest's own)."""
    try:
        pem = read_small(bundle, receiver.SIGNER, MAX_SMALL_BYTES)
        sums = read_small(bundle, receiver.SUMS, receiver.MAX_SUMS_BYTES)
        signature = read_small(bundle, receiver.SUMS_SIG, MAX_SMALL_BYTES)
        readme = read_small(bundle, receiver.README, MAX_SMALL_BYTES)
    except Unreadable as exc:
        result.problems.append(str(exc))
        return
    if _pem_key(pem) != manifest.key:
        result.problems.append(f"{receiver.SIGNER}: not the key {MANIFEST} names")
    if not signing.verify(manifest.key, sums, signature):
        result.problems.append(
            f"{receiver.SUMS_SIG}: the signature does not match {receiver.SUMS} "
            "(the list was edited, or the signature replaced)"
        )
    try:
        listed = receiver.parse_sums(sums)
    except ValueError as exc:
        result.problems.append(f"{receiver.SUMS}: {exc}")
        return
    expected = {e.name: e.sha256 for e in result.entries}
    for name, data in ((MANIFEST, body), (receiver.SIGNER, pem), (receiver.README, readme)):
        expected[name] = hashlib.sha256(data).hexdigest()
    for name in sorted(listed.keys() | expected.keys()):
        if name not in listed:
            result.problems.append(f"{receiver.SUMS}: does not list {name}")
        elif name not in expected:
            result.problems.append(f"{receiver.SUMS}: lists {shown(name)}, not in the bundle")
        elif listed[name] != expected[name]:
            result.problems.append(f"{receiver.SUMS}: the SHA-256 of {name} is not the bundle's")
