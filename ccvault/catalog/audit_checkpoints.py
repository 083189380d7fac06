"""Signed checkpoints of the audit chain: a record's (seq, hash), signed with the installation's
Ed25519 key, so the chain up to it cannot be rewritten, cut or replaced unseen by anyone who
lacks the key — even someone who can also write the catalog.

They are appended to `<log>.checkpoints` (JSON lines, beside the log, verifiable without the
catalog: each carries its signer's public key) and the latest is also kept in the catalog's
audit head, in the transaction of the record it signs, so deleting the file loses nothing
that matters. When they are written (`AuditLog.append`, `AuditLog.checkpoint`): every
`CHECKPOINT_EVERY` records, when a file is sealed (rotation), hourly and at stop (the daemon),
with each backup and each acknowledgment.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from ccvault.host.durable import fsync_dir, make_dirs, open_private
from ccvault.host.keys import SigningKey, fingerprint, verify
from ccvault.timefmt import utc_text

# Records between two checkpoints written while appending. Signing costs ~0.1 ms and the
# checkpoints file one fsync, once per this many appends (each of which fsyncs anyway).
CHECKPOINT_EVERY = 100


class CheckpointKind(StrEnum):
    INTERVAL = "interval"  # every CHECKPOINT_EVERY records, and the daemon's hourly one
    SEAL = "seal"  # the last record of a file sealed by rotation
    STOP = "stop"  # the daemon stopping
    BACKUP = "backup"  # `ccvault backup`: a restored copy can be told from a forged log
    ACK = "ack"  # an admin acknowledged the problems listed in the record it signs


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    time: str
    kind: str
    key: str  # the signer's raw public key, base64
    sig: str  # base64 Ed25519 signature over `payload()`
    file: str | None = None  # a seal: the sealed file's name
    first_seq: int | None = None  # a seal: the sealed file's first record

    def payload(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "sig"}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def public_raw(self) -> bytes | None:
        try:
            raw = base64.b64decode(self.key, validate=True)
        except (binascii.Error, ValueError):
            return None
        return raw if len(raw) == 32 else None

    @property
    def signer(self) -> str | None:
        raw = self.public_raw
        return fingerprint(raw) if raw else None

    def signature_ok(self) -> bool:
        raw = self.public_raw
        try:
            signature = base64.b64decode(self.sig, validate=True)
        except (binascii.Error, ValueError):
            return False
        return raw is not None and verify(raw, self.payload(), signature)

    @classmethod
    def parse(cls, value: object) -> Checkpoint | None:
        """A checkpoint from its JSON form; None if it is not one (wrong keys or types)."""
        if not isinstance(value, dict) or set(value) != set(cls.__dataclass_fields__):
            return None
        ints, texts = ("seq",), ("hash", "time", "kind", "key", "sig")
        if not all(type(value[k]) is int for k in ints) or not all(
            isinstance(value[k], str) for k in texts
        ):
            return None
        if not (value["file"] is None or isinstance(value["file"], str)):
            return None
        if not (value["first_seq"] is None or type(value["first_seq"]) is int):
            return None
        return cls(**value)


def sign(
    key: SigningKey,
    seq: int,
    record_hash: str,
    now_ms: int,
    kind: CheckpointKind,
    file: str | None = None,
    first_seq: int | None = None,
) -> Checkpoint:
    unsigned = Checkpoint(
        seq, record_hash, utc_text(now_ms), str(kind), key.public_b64, "", file, first_seq
    )
    return replace(unsigned, sig=base64.b64encode(key.sign(unsigned.payload())).decode())


@dataclass(frozen=True)
class CheckpointLine:
    """One line of the checkpoints file: a checkpoint, or None where the line is not one."""

    line: int
    checkpoint: Checkpoint | None


class CheckpointFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, checkpoint: Checkpoint) -> None:
        created = not self.path.exists()
        if created:
            make_dirs(self.path.parent)
        data = json.dumps(checkpoint.as_json(), separators=(",", ":")).encode() + b"\n"
        fd = open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)

    def identity(self) -> tuple[int, int, int] | None:
        """(device, inode, size), or None when there is no file."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino, st.st_size

    def read_from(self, offset: int, line: int) -> tuple[list[CheckpointLine], int, int]:
        """Complete lines from `offset` (after line number `line`): what they hold, and where
        the next read starts (offset, line)."""
        try:
            with self.path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset, line
        out = []
        end = data.rfind(b"\n") + 1
        for raw in data[:end].splitlines():
            line += 1
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            out.append(CheckpointLine(line, Checkpoint.parse(value)))
        return out, offset + end, line
