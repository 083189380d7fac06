"""The comparisons behind an audit verification: the files' end against the catalog's head
(`classify_head`), and the records against the signed checkpoints (`SignedSet`).

How the head and the files can disagree, and what each means:
- the files end before the head: the tail was cut (or, the live file absent, it is missing);
- the record at the head's seq differs: the log was rewritten or replaced (so does a record a
  valid checkpoint signs: `SignedSet.replaced` names the first such record);
- records past the head: signed ones mean the catalog is older than the log (restored from a
  backup); unsigned ones are forged or orphaned — except the one append a crash leaves between
  a record's fsync and its transaction's commit, which is a note, not a problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ccvault.catalog.audit import Head, one_append
from ccvault.catalog.audit_checkpoints import Checkpoint, CheckpointFile, CheckpointKind
from ccvault.catalog.audit_report import CheckpointSummary, Kind, Problem
from ccvault.host.keys import fingerprint


@dataclass(frozen=True)
class Located:
    """A record as the walk saw it: enough to compare and to point people at its line."""

    seq: int
    hash: str
    prev: str
    action: str
    file: str
    line: int


class Chain(Protocol):
    """What the comparisons ask of the walk (`audit_verify.Verifier`)."""

    signed: SignedSet

    def located(self, seq: int) -> Located | None: ...
    def after(self, seq: int) -> list[Located] | None: ...
    def in_gap(self, seq: int) -> bool: ...


@dataclass
class Findings:
    problems: list[Problem] = field(default_factory=list)
    anchors: dict[int, str] = field(default_factory=dict)  # seq → who names another record
    notes: list[str] = field(default_factory=list)
    uncommitted: set[int] = field(default_factory=set)


def classify_head(
    chain: Chain,
    head: tuple[int, str],
    tail_seq: int,
    live_missing: bool,
    before: int | None,
    tolerate: bool = True,
) -> Findings:
    """How the files' end (`tail_seq`) stands to the catalog's head; `before`: only
    checkpoints signed before this seq count (a discontinuity record's own seq), so the
    verdict on a recorded break never changes afterwards."""
    h_seq, h_hash = head
    out = Findings()
    if tail_seq < h_seq:
        kind = Kind.FILE_MISSING if live_missing else Kind.TAIL_CUT
        what = (
            "the live log file is missing"
            if live_missing
            else "the log is empty"
            if tail_seq == 0
            else f"the log ends at seq {tail_seq}"
        )
        detail = f"{what} but the catalog's head is seq {h_seq}: tail cut after seq {tail_seq}"
        out.problems.append(Problem(kind, tail_seq + 1, detail))
        return out
    at = chain.located(h_seq) if h_seq else None
    if h_seq and (at is None or at.hash != h_hash):
        out.anchors[h_seq] = "the catalog's head"
        return out
    if tail_seq == h_seq or (tolerate and _crash_window(chain, out, head, tail_seq)):
        return out
    limit = tail_seq if before is None else min(tail_seq, before - 1)
    signed = chain.signed.signed_between(chain, h_seq, limit)
    if signed > h_seq:
        detail = (
            f"records {h_seq + 1}–{signed} are in the log and signed, but the catalog's head is "
            f"seq {h_seq}: the catalog is older than the log (restored from an older backup?), "
            "and changes they record may be missing from it (holds: `ccvault hold rebuild`)"
        )
        out.problems.append(Problem(Kind.CATALOG_BEHIND, h_seq + 1, detail))
    start = max(h_seq, signed)
    if tail_seq > start:
        first = chain.located(start + 1)
        detail = (
            f"records {start + 1}–{tail_seq} are not in the catalog and not signed (its head "
            f"is seq {h_seq}): written outside ccvault, or the catalog was restored from an "
            "older backup"
        )
        where = (first.file, first.line) if first else (None, None)
        out.problems.append(Problem(Kind.LOG_AHEAD, start + 1, detail, *where, start + 1))
    return out


def _crash_window(chain: Chain, out: Findings, head: tuple[int, str], tail_seq: int) -> bool:
    """The records past the head are the one append a crash (or a failed commit) leaves
    between a record's fsync and its transaction's commit: a note, and never replayed. The
    next append marks it (`audit.uncommitted`), and a discontinuity record never needs this."""
    after = chain.after(head[0])
    rows = [{"action": r.action, "prev": r.prev, "hash": r.hash} for r in after or []]
    if not (after and one_append(rows, head[1]) and tail_seq == head[0] + len(after)):
        return False
    out.notes.append(
        f"the log is one append ahead of the catalog (seq {after[-1].seq}): the crash window "
        "between an append and its commit; the next record marks it as not committed"
    )
    out.uncommitted.add(after[-1].seq)
    return True


@dataclass
class Signed:
    """One checkpoint as read, and what checking it found."""

    checkpoint: Checkpoint | None  # None: the line is not a checkpoint at all
    where: str
    trouble: str = ""  # why it does not count ("" when its signature and signer are good)
    matched: bool | None = None  # its record is as signed (None: not compared yet)


class SignedSet:
    """The checkpoints from the checkpoints file (read incrementally) and the catalog."""

    def __init__(self, file: CheckpointFile, trusted: bytes | None, key_source: str | None):
        self.file, self.trusted, self.key_source = file, trusted, key_source
        self.reset()

    def reset(self) -> None:
        self._all: dict[object, Signed] = {}
        self._ident: tuple[int, int, int] | None = None
        self._offset = self._line = 0

    def read(self, head: Head | None) -> bool:
        """New lines of the file, and the head's checkpoint; False when the file was replaced
        or shrank (the caller starts over)."""
        ident = self.file.identity()
        if self._ident is not None and (
            ident is None or ident[:2] != self._ident[:2] or ident[2] < self._offset
        ):
            return False
        self._ident = ident
        lines, self._offset, self._line = self.file.read_from(self._offset, self._line)
        for entry in lines:
            self._add(entry.checkpoint, f"{self.file.path.name} line {entry.line}")
        if head is not None and head.checkpoint is not None:
            self._add(head.checkpoint, "the catalog's head")
        return True

    def _add(self, cp: Checkpoint | None, where: str) -> None:
        key: object = where if cp is None else (cp.seq, cp.key, cp.sig)
        if key in self._all:
            return
        trouble = ""
        if cp is None:
            trouble = "not a checkpoint"
        elif not cp.signature_ok():
            trouble = "its signature does not verify"
        elif self.trusted is not None and cp.public_raw != self.trusted:
            trouble = (
                f"signed by key {(cp.signer or '?')[:16]}…, not this installation's "
                f"({fingerprint(self.trusted)[:16]}…)"
            )
        self._all[key] = Signed(cp, where, trouble)

    def _good(self) -> list[Signed]:
        return [s for s in self._all.values() if not s.trouble and s.checkpoint is not None]

    def seqs(self) -> set[int]:
        return {s.checkpoint.seq for s in self._good() if s.checkpoint}

    def sealed_file(self, first_seq: int) -> str | None:
        for s in self._good():
            cp = s.checkpoint
            if cp and cp.kind == CheckpointKind.SEAL and cp.first_seq == first_seq:
                return cp.file
        return None

    def _matches(self, chain: Chain, s: Signed) -> bool:
        if s.matched is None and s.checkpoint is not None:
            at = chain.located(s.checkpoint.seq)
            if at is None:
                return False  # not (yet) in the log: a cut, judged by `compare`
            s.matched = at.hash == s.checkpoint.hash
        return bool(s.matched)

    def signed_between(self, chain: Chain, low: int, high: int) -> int:
        """The last record in (low, high] that a valid checkpoint signs as it is (else low)."""
        seqs = [
            s.checkpoint.seq
            for s in self._good()
            if s.checkpoint and low < s.checkpoint.seq <= high and self._matches(chain, s)
        ]
        return max(seqs, default=low)

    def compare(self, chain: Chain, tail: int) -> Findings:
        out = Findings()
        for s in self._all.values():
            cp = s.checkpoint
            if s.trouble:
                detail = f"{s.where}: " + (f"checkpoint for seq {cp.seq}: " if cp else "")
                seq = cp.seq if cp else 0
                out.problems.append(Problem(Kind.CHECKPOINT_INVALID, seq, detail + s.trouble))
            elif cp is not None and cp.seq > tail and not chain.in_gap(cp.seq):
                detail = (
                    f"a signed checkpoint names seq {cp.seq} but the log ends at seq {tail}: "
                    f"tail cut after seq {tail}"
                )
                out.problems.append(Problem(Kind.TAIL_CUT, tail + 1, detail))
            elif cp is not None and not self._matches(chain, s) and s.matched is False:
                out.anchors.setdefault(cp.seq, "a signed checkpoint")
        return out

    def replaced(self, anchors: dict[int, str]) -> Problem | None:
        """One problem for every record that differs from what names it: the first of them,
        and the last record before it that a checkpoint confirms (forgery starts after)."""
        if not anchors:
            return None
        first = min(anchors)
        confirmed = max(
            (s.checkpoint.seq for s in self._good() if s.matched and s.checkpoint.seq < first),
            default=0,
        )
        detail = f"record seq {first} is not the one {anchors[first]} names: the log was "
        detail += "rewritten or replaced" + (
            f" after seq {confirmed}, the last record a signed checkpoint confirms"
            if confirmed
            else ""
        )
        others = sorted(set(anchors) - {first})
        if others:
            detail += f"; records {', '.join(map(str, others[:5]))} differ too"
        return Problem(Kind.REPLACED, first, detail, suspect_from=confirmed + 1)

    def signs_ack(self, seq: int) -> bool:
        """An acknowledgment's own checkpoint (kind ack, at its very seq) holds: only
        `audit_ack.acknowledge`, with the key, writes one, so a forged acknowledgment line
        cannot borrow a later checkpoint's signature."""
        return any(
            s.matched and s.checkpoint.seq == seq and s.checkpoint.kind == CheckpointKind.ACK
            for s in self._good()
            if s.checkpoint
        )

    def last_matched(self) -> int | None:
        return max(
            (s.checkpoint.seq for s in self._good() if s.matched and s.checkpoint), default=None
        )

    def summary(self) -> CheckpointSummary:
        good = [s for s in self._good() if s.matched]
        signer = fingerprint(self.trusted) if self.trusted else None
        if signer is None and good and good[-1].checkpoint:
            signer = good[-1].checkpoint.signer
        return CheckpointSummary(
            len(self._all), len(good), self.last_matched(), signer, self.key_source
        )
