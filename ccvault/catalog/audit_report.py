"""What a verification of the audit chain found (`audit_verify.Verifier`): the problems, each
with a kind people and scripts can act on, the acknowledgments that cover some of them, and
what `ccvault audit verify --json` prints (stable keys).

A problem's identity is (kind, seq) — the first record it concerns — so it is the same problem
before and after ccvault writes again, and after rotation renames its file: an acknowledgment
names problems by it. An acknowledged problem stays in every report; only `ok` stops counting
it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ccvault.catalog.audit import Head


class Kind(StrEnum):
    BROKEN = "broken"  # a line is not a record, its hash is wrong, or it does not link
    TAIL_CUT = "tail_cut"  # records the catalog's head or a checkpoint names are gone
    FILE_MISSING = "file_missing"  # the live log or a sealed file is gone
    REPLACED = "replaced"  # a record differs from what the head or a checkpoint names
    LOG_AHEAD = "log_ahead"  # records past the head that nothing vouches for
    CATALOG_BEHIND = "catalog_behind"  # signed records past the head: an older catalog
    CHECKPOINT_INVALID = "checkpoint_invalid"  # a checkpoint that does not verify


@dataclass(frozen=True)
class Acknowledgment:
    """An admin's `audit.acknowledged` record, signed by a checkpoint at or after it."""

    seq: int
    actor: str
    reason: str
    time: str
    covers: frozenset[tuple[str, int]]

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "actor": self.actor, "reason": self.reason, "time": self.time}


@dataclass(frozen=True)
class Problem:
    kind: Kind
    seq: int  # the first record it concerns
    detail: str
    file: str | None = None
    line: int | None = None
    suspect_from: int | None = None  # records from here on may be forged (None: a gap only)
    acknowledged: Acknowledgment | None = None

    @property
    def key(self) -> tuple[str, int]:
        return str(self.kind), self.seq

    def where(self) -> str:
        return f"line {self.line} of {self.file}" if self.line and self.file else f"seq {self.seq}"

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "seq": self.seq,
            "file": self.file,
            "line": self.line,
            "detail": self.detail,
            "acknowledged": self.acknowledged.as_json() if self.acknowledged else None,
        }


@dataclass(frozen=True)
class FileSummary:
    name: str
    first_seq: int | None
    last_seq: int | None
    records: int

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "records": self.records,
        }


@dataclass(frozen=True)
class CheckpointSummary:
    checked: int  # read from the checkpoints file and the catalog
    valid: int  # signature good, signer trusted, record as signed
    last_seq: int | None  # the last record a valid checkpoint signs
    signer: str | None  # the trusted key's fingerprint
    key_source: str | None  # where the trusted key came from (None: each checkpoint's own)

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "valid": self.valid,
            "last_signed_seq": self.last_seq,
            "signer": self.signer,
            "key_source": self.key_source,
        }


@dataclass(frozen=True)
class Report:
    records: int
    tail_seq: int
    files: list[FileSummary]
    head: Head | None
    checkpoints: CheckpointSummary
    problems: list[Problem]
    notes: list[str]
    uncommitted: frozenset[int] = field(default_factory=frozenset)  # appended, never committed

    @property
    def ok(self) -> bool:
        return all(p.acknowledged for p in self.problems)

    @property
    def open(self) -> list[Problem]:
        return [p for p in self.problems if not p.acknowledged]

    def first_suspect(self) -> Problem | None:
        """The problem from whose record on the chain may hold forged lines (acknowledged or
        not: an acknowledgment accepts a break, it does not make forged lines true)."""
        suspects = [p for p in self.problems if p.suspect_from is not None]
        return min(suspects, key=lambda p: p.suspect_from or 0, default=None)

    def summary(self) -> str:
        """The first open problem, for the `audit_chain_broken` alert."""
        first = self.open[0] if self.open else None
        if first is None:
            return ""
        more = f" (and {len(self.open) - 1} more)" if len(self.open) > 1 else ""
        return f"{first.kind} at {first.where()}: {first.detail}{more}"

    def as_json(self) -> dict[str, Any]:
        head = self.head
        return {
            "ok": self.ok,
            "records": self.records,
            "files": [f.as_json() for f in self.files],
            "head": None
            if head is None
            else {
                "seq": head.seq,
                "hash": head.hash,
                "checkpoint_seq": head.checkpoint.seq if head.checkpoint else None,
            },
            "checkpoints": self.checkpoints.as_json(),
            "problems": [p.as_json() for p in self.problems],
            "notes": self.notes,
        }


def acknowledge(problems: list[Problem], acks: list[Acknowledgment]) -> list[Problem]:
    """Problems with the acknowledgment that covers each (the earliest), if any."""
    out = []
    for problem in problems:
        ack = next((a for a in acks if problem.key in a.covers), None)
        out.append(replace(problem, acknowledged=ack) if ack else problem)
    return out
