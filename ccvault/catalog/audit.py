"""The append-only, hash-chained audit log: who changed or deleted what, as JSON lines.

Each record carries the previous record's hash, so editing, inserting or deleting a line breaks
the chain at that line. What the file alone cannot show — its tail cut, the whole file emptied,
deleted or replaced by a valid chain of other records — is caught by anchors outside it: the
catalog's audit head (seq, hash), committed in the same transaction as the action each record
describes (`CatalogWriter.audit`), and signed checkpoints (`audit_checkpoints.py`). An append
first compares the file's end with the head; when they disagree it writes what it found
(`audit.discontinuity`: the tail was cut, the file is missing or was replaced, or the log runs
ahead of the catalog) before its own record, so the break stays in the chain for good and no
later record can paper over it. `audit_verify.py` judges all of it.

The catalog writer's transaction serialises appends across processes; this module assumes it
and takes no lock of its own. Footage retention never touches these files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccvault.catalog import audit_files as files
from ccvault.catalog.audit_checkpoints import (
    CHECKPOINT_EVERY,
    Checkpoint,
    CheckpointFile,
    CheckpointKind,
    sign,
)
from ccvault.config.model import Config
from ccvault.errors import CcvaultError, ConfigError
from ccvault.host.durable import fsync_dir, make_dirs, open_private
from ccvault.host.journal import JournalSink
from ccvault.host.keys import KeyFile, SigningKey
from ccvault.timefmt import utc_text

GENESIS = "0" * 64
KEYS = ("seq", "time", "actor", "action", "object", "details", "prev", "hash")
MAX_SEQ = 2**53  # a trillion records a day for twenty thousand years; exact in any JSON reader
DISCONTINUITY, UNCOMMITTED, REPAIRED = files.MARKERS
_TAIL_RECORDS = 4  # an append writes at most 3 records (two markers and its own)


@dataclass(frozen=True)
class Head:
    """The chain's end as the catalog committed it, and the latest signed checkpoint."""

    seq: int
    hash: str
    checkpoint: Checkpoint | None = None


@dataclass(frozen=True)
class Tail:
    """The chain's end as the files hold it: the last few complete records (oldest first, from
    the last sealed file when the live one has too few), torn bytes after them, and whether
    the live file exists."""

    last: tuple[dict[str, Any], ...]
    torn: int
    live_missing: bool

    @property
    def seq(self) -> int:
        return self.last[-1]["seq"] if self.last else 0

    @property
    def hash(self) -> str:
        return self.last[-1]["hash"] if self.last else GENESIS


@dataclass(frozen=True)
class Appended:
    record: dict[str, Any]
    checkpoint: Checkpoint | None  # signed by this append (periodic, forced or a seal)

    def head(self, before: Head | None) -> Head:
        kept = before.checkpoint if before else None
        return Head(self.record["seq"], self.record["hash"], self.checkpoint or kept)


@dataclass(frozen=True)
class AuditCheck:
    """The chain in the files alone (no catalog), for a copy such as a backup's."""

    ok: bool
    records: int
    bad_line: int | None
    problem: str


def record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_record(value: Any) -> bool:
    """A record's shape: its keys, a seq in range (one far past it would overflow the
    catalog's head at the next append), the text fields as text. Anything else in the file
    is a line that is not a record: named by `audit verify`, passed over by appends."""
    if not (isinstance(value, dict) and value.keys() == set(KEYS)):
        return False
    seq = value["seq"]
    texts = ("time", "actor", "action", "object", "prev", "hash")
    return (
        type(seq) is int
        and 0 < seq <= MAX_SEQ
        and all(isinstance(value[k], str) for k in texts)
        and isinstance(value["details"], dict)
    )


def audit_log(config: Config) -> AuditLog:
    """This node's log as configured, signing with its key (when readable)."""
    return AuditLog(
        config.audit_path,
        key=KeyFile(config.signing_key_path),
        max_bytes=config.audit.max_bytes,
        journal=JournalSink() if config.audit.journald else None,
        node=config.node.name,
    )


class AuditLog:
    def __init__(
        self,
        path: Path,
        *,
        key: KeyFile | None = None,
        max_bytes: int = 0,
        journal: JournalSink | None = None,
        node: str | None = None,
    ) -> None:
        self.path = path
        self.key = key
        self.max_bytes = max_bytes
        self.journal = journal
        # The node whose chain this file is (None: a tool's or bench's log, no claim).
        self.node = node
        self._owned = False
        self.checkpoints = CheckpointFile(files.checkpoints_path(path))

    def files(self) -> list[files.LogFile]:
        return files.listing(self.path)

    def append(
        self,
        *,
        actor: str,
        action: str,
        obj: str,
        details: dict[str, Any],
        now_ms: int,
        head: Head | None = None,
        checkpoint: CheckpointKind | None = None,
    ) -> Appended:
        """Append one record and fsync it; the caller holds the catalog writer's transaction
        and commits `Appended.head` in it. `head` None: no catalog to compare with.

        Bytes after the last newline are an append that a crash cut short. That append ran
        inside a catalog transaction which never committed, so it records nothing that
        happened; it is truncated, and an `audit.repaired` record saying how many bytes were
        dropped goes first, so the chain continues and the cut stays visible.
        """
        json.dumps(details)  # not serialisable: fail before touching the file
        lines, size = self._write(head, actor, now_ms, (action, obj, details))
        return Appended(lines[-1], self._sign_after(lines[-1], head, checkpoint, size, now_ms))

    def reconcile(self, head: Head | None, actor: str, now_ms: int) -> Head | None:
        """Write what an append would find wrong before its record (no record of its own):
        the acknowledgment lists the break as the log will show it from now on."""
        lines, _ = self._write(head, actor, now_ms, None)
        if not lines:
            return head
        return Head(lines[-1]["seq"], lines[-1]["hash"], head.checkpoint if head else None)

    def _write(
        self,
        head: Head | None,
        actor: str,
        now_ms: int,
        what: tuple[str, str, dict[str, Any]] | None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Markers for what the files' end gets wrong (the head disagrees; torn bytes, which
        are cut off), then the record `what` if any: written, fsynced, copied to the journal.
        Returns the records written and the live file's size after them."""
        self._check_owner()
        fd, created = self._open_live()
        try:
            tail = self._tail(fd, created, 1)  # the usual case: the head's own record
            if head is not None and (tail.seq, tail.hash) != (head.seq, head.hash):
                tail = self._tail(fd, created, _TAIL_RECORDS)
            lines = _head_markers(head, tail, actor, now_ms)
            seq, prev = (lines[-1]["seq"], lines[-1]["hash"]) if lines else (tail.seq, tail.hash)
            if tail.torn:
                os.ftruncate(fd, os.fstat(fd).st_size - tail.torn)
                repair = {"dropped_bytes": tail.torn}
                lines.append(_record(seq + 1, now_ms, actor, REPAIRED, "audit", repair, prev))
                seq, prev = lines[-1]["seq"], lines[-1]["hash"]
            if what is not None:
                lines.append(_record(seq + 1, now_ms, actor, *what, prev))
            if lines:
                _write_all(fd, b"".join(_line(r) for r in lines))
                os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        if self.journal is not None:
            self.journal.send_records(lines)
        return lines, size

    def checkpoint(self, head: Head | None, kind: CheckpointKind, now_ms: int) -> Checkpoint | None:
        """Sign the chain's end if it is what the catalog committed and not signed yet; a file
        that disagrees with the head is never signed (the next append records why)."""
        key = self.key.signer() if self.key else None
        if key is None or head is None:
            return None
        if head.checkpoint is not None and head.checkpoint.seq == head.seq:
            return None
        try:
            with self.path.open("rb") as f:
                tail = self._tail(f.fileno(), False, 1)
        except FileNotFoundError:
            tail = self._tail(None, True, 1)
        if (tail.seq, tail.hash) != (head.seq, head.hash) or tail.torn:
            return None
        signed = sign(key, head.seq, head.hash, now_ms, kind)
        self.checkpoints.append(signed)
        return signed

    def records(self, strict: bool = True) -> Iterator[dict[str, Any]]:
        """Complete records in chain order across all files; a line still being written (no
        newline) is skipped, and so is a line that is not a record unless `strict` (then it
        is an error pointing at `audit verify`)."""
        for log_file in self.files():
            for number, _, line in files.lines_from(log_file.path):
                record = files.parse(line)
                if not is_record(record) and not strict:
                    continue
                if not is_record(record):
                    raise CcvaultError(
                        f"audit log {log_file.path}",
                        f"line {number} is not a record; see `ccvault audit verify`",
                    )
                yield record  # type: ignore[misc]

    def verify(self) -> AuditCheck:
        """The files' chain and their signed checkpoints, without a catalog. A torn last line
        is not a failure: a reader can see an append in progress, and after a crash the next
        append drops and records it."""
        from ccvault.catalog.audit_verify import Verifier

        report = Verifier(self).check()
        first = next((p for p in report.problems if not p.acknowledged), None)
        if first is not None:
            return AuditCheck(False, report.records, first.line, first.detail)
        torn = next((n for n in report.notes if n.startswith("torn")), "")
        return AuditCheck(True, report.records, None, torn)

    def _check_owner(self) -> None:
        """Each node's file is its own chain, checked against its own head: two nodes
        appending to one file would each see the other's records as a break, so a node
        refuses (before writing anything) a log another node has claimed."""
        if self.node is None or self._owned:
            return
        owner = files.claim_owner(self.path, self.node)
        if owner != self.node:
            raise ConfigError(
                f"[audit] path {self.path}",
                f"holds the audit chain of node {owner!r} ({files.owner_path(self.path).name}); "
                f"give node {self.node!r} its own [audit] path (or state_dir)",
            )
        self._owned = True

    def _open_live(self) -> tuple[int, bool]:
        created = not self.path.exists()
        if created:
            make_dirs(self.path.parent)
        fd = open_private(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        if files.finish_sealing(self.path, fd):
            os.close(fd)
            return self._open_live()
        return fd, created

    def _tail(self, fd: int | None, live_missing: bool, count: int) -> Tail:
        """The chain's end: the live file's last `count` records, topped up from the last
        sealed file when the live one holds fewer. Lines that are not records are passed
        over: the chain goes on from the last record, and `audit verify` names them."""
        last: list[dict[str, Any]] = []
        torn = 0
        if fd is not None:
            last, keep, size = files.last_records(fd, count, is_record)
            torn = size - keep
        if len(last) < count:
            sealed = [f for f in self.files() if f.first_seq is not None]
            if sealed:
                with sealed[-1].path.open("rb") as f:
                    earlier, _, _ = files.last_records(f.fileno(), count, is_record)
                last = [*earlier, *last][-count:]
        return Tail(tuple(last), torn, live_missing)

    def _sign_after(
        self,
        record: dict[str, Any],
        head: Head | None,
        forced: CheckpointKind | None,
        size: int,
        now_ms: int,
    ) -> Checkpoint | None:
        """The checkpoint this append owes (forced, periodic, or the seal of a full file)."""
        key = self.key.signer() if self.key else None
        if key is None:
            return None  # no key here (another user's CLI): the daemon signs what it finds
        last_signed = head.checkpoint.seq if head and head.checkpoint else 0
        due = head is not None and record["seq"] - last_signed >= CHECKPOINT_EVERY
        full = bool(self.max_bytes) and size >= self.max_bytes
        signed = None
        if forced is not None or (due and not full):  # an acknowledgment is always its own
            kind = forced or CheckpointKind.INTERVAL
            signed = sign(key, record["seq"], record["hash"], now_ms, kind)
            self.checkpoints.append(signed)
        if full:
            signed = self._seal(key, record, now_ms) or signed
        return signed

    def _seal(self, key: SigningKey, record: dict[str, Any], now_ms: int) -> Checkpoint | None:
        """Rotation: the full live file gets its sealed name, and its last record a signed
        seal naming it; the next append starts a new live file continuing the chain. A name
        already taken (by anyone) means no rotation this time, never a lost file."""
        first = files.parse(files.first_line(self.path) or b"")
        if first is None or type(first.get("seq")) is not int:
            return None
        target = files.sealed_path(self.path, first["seq"])
        if not files.link_sealed(self.path, target):
            return None
        signed = sign(
            key,
            record["seq"],
            record["hash"],
            now_ms,
            CheckpointKind.SEAL,
            target.name,
            first["seq"],
        )
        self.checkpoints.append(signed)
        files.drop_live(self.path)
        return signed


def _head_markers(head: Head | None, tail: Tail, actor: str, now_ms: int) -> list[dict[str, Any]]:
    """The record saying how the files' end disagrees with the catalog's head, if they do:
    `audit.uncommitted` for the one append a crash (or a failed commit) left past the head,
    `audit.discontinuity` for anything else. Its seq never reuses one the head or a
    checkpoint may name."""
    if head is None or (tail.seq, tail.hash) == (head.seq, head.hash):
        return []
    after = [r for r in tail.last if r["seq"] > head.seq]
    if one_append(after, head.hash) and tail.seq == head.seq + len(after):
        last = after[-1]
        details = {"seq": last["seq"], "hash": last["hash"], "action": last["action"]}
        return [_record(tail.seq + 1, now_ms, actor, UNCOMMITTED, "audit", details, tail.hash)]
    at = next((r for r in tail.last if r["seq"] == head.seq), None)
    if tail.seq < head.seq:
        kind = "file_missing" if tail.live_missing else "tail_cut"
    elif tail.seq == head.seq or (at is not None and at["hash"] != head.hash):
        kind = "replaced"
    else:
        kind = "log_ahead"
    details = {
        "kind": kind,
        "catalog_head": {"seq": head.seq, "hash": head.hash},
        "log_tail": {"seq": tail.seq, "hash": tail.hash},
    }
    seq = max(tail.seq, head.seq) + 1
    return [_record(seq, now_ms, actor, DISCONTINUITY, "audit", details, tail.hash)]


def one_append(after: list[dict[str, Any]], head_hash: str) -> bool:
    """Records past the head are what one append writes — markers, then one record — linked
    to the head: a crash between the append and its commit, never anything longer."""
    if not after or len(after) >= _TAIL_RECORDS:
        return False
    if any(r["action"] not in files.MARKERS for r in after[:-1]):
        return False
    prev = head_hash
    for r in after:
        if r["prev"] != prev:
            return False
        prev = r["hash"]
    return True


def _record(
    seq: int, now_ms: int, actor: str, action: str, obj: str, details: dict[str, Any], prev: str
) -> dict[str, Any]:
    record = {
        "seq": seq,
        "time": utc_text(now_ms),
        "actor": actor,
        "action": action,
        "object": obj,
        "details": details,
        "prev": prev,
    }
    record["hash"] = record_hash(record)
    return record


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
