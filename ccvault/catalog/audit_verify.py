"""Verifying the audit chain: its files, the catalog's head and the signed checkpoints,
compared, with a diagnosis (`audit_report.Kind`) for each way they disagree.

One `Verifier` serves `ccvault audit verify` (one full walk) and the daemon (`check` each
minute reads only what was appended since, across rotation). It walks each record once,
keeping only what later comparisons need: the hashes at the seqs that checkpoints and the
head name, the last few records, the problems found. Whatever it walked must stay as it was —
sealed files unchanged, the last line read intact, the files in the same order — or it starts
over from the first file, so the problems it reports are always those of the files as they
are. The catalog's head is read before the walk and again after it, so a record appended and
committed meanwhile is not mistaken for one past the head.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ccvault.catalog import audit_files as files
from ccvault.catalog.audit import (
    DISCONTINUITY,
    GENESIS,
    UNCOMMITTED,
    AuditLog,
    Head,
    is_record,
    record_hash,
)
from ccvault.catalog.audit_checks import Located, SignedSet, classify_head
from ccvault.catalog.audit_report import (
    Acknowledgment,
    FileSummary,
    Kind,
    Problem,
    Report,
    acknowledge,
)
from ccvault.errors import UsageError
from ccvault.host.keys import installation_public_key

ACKNOWLEDGED = "audit.acknowledged"
_RING = 64  # recent records kept: what a checkpoint or head just written names
_NOTHING = hashlib.sha256(b"").hexdigest()  # the last line read when none was


@dataclass
class _Walked:
    name: str
    size: int
    mtime_ns: int
    first_seq: int | None = None
    last_seq: int | None = None
    records: int = 0


class Verifier:
    def __init__(
        self,
        log: AuditLog,
        head: Callable[[], Head | None] | None = None,
        trusted: bytes | None = None,
        key_source: str | None = None,
    ) -> None:
        self.log = log
        self._read_head = head
        self.signed = SignedSet(log.checkpoints, trusted, key_source)
        self.rereads = 0  # times what was verified changed, so all was read again
        self._reset()

    def check(self, head: Callable[[], Head | None] | None = None) -> Report:
        """Walk what is new (everything, the first time or after a change) and compare;
        `head` reads the catalog's head instead of the reader given at construction (inside
        a write transaction: its own uncommitted head)."""
        read = head or self._read_head
        before = read() if read else None
        if not (self.signed.read(before) and self._walk(before)):
            self.rereads += 1
            self._reset()
            self.signed.read(before)
            self._walk(before)
        after = read() if read else None
        return self._report(before, after, read is not None)

    # -- the walk -----------------------------------------------------------------------------

    def _reset(self) -> None:
        self.signed.reset()
        self._files: dict[tuple[int, int], _Walked] = {}
        self._offset = self._line = self._last_start = 0
        self._last_digest = _NOTHING
        self._seq, self._prev, self._records = 0, GENESIS, 0
        self._resync = False
        self._ring: deque[Located] = deque(maxlen=_RING)
        self._found: dict[int, Located] = {}
        self._problems: dict[tuple[str, int], Problem] = {}
        self._anchors: dict[int, str] = {}  # seq → who named a different record there
        self._gaps: list[tuple[int, int]] = []
        self._claims: dict[int, tuple[int, str]] = {}  # audit.uncommitted seq → (seq, action)
        self._acks: list[Acknowledgment] = []

    def _walk(self, head: Head | None) -> bool:
        """False when what was walked before changed (the caller starts over)."""
        listing = self.log.files()
        known = list(self._files)
        if [f.ident for f in listing[: len(known)]] != known:
            return False
        for f in listing[: max(len(known) - 1, 0)]:  # walked to their end: unchanged
            seen = self._files[f.ident]
            if (f.size, f.mtime_ns) != (seen.size, seen.mtime_ns):
                return False
            seen.name = f.name
        if known and not self._intact(listing[len(known) - 1]):
            return False
        self._wanted = self.signed.seqs() | ({head.seq} if head else set())
        current = len(known) - 1
        if current >= 0:
            self._read(listing[current], continuing=True)
        for index in range(current + 1, len(listing)):
            if index > 0:
                self._leave(listing[index - 1])
            self._read(listing[index], continuing=False)
        return True

    def _intact(self, f: files.LogFile) -> bool:
        """The file being read has only grown, and its last line read is unchanged."""
        if f.size < self._offset:
            return False
        try:
            with f.path.open("rb") as handle:
                handle.seek(self._last_start)
                line = handle.read(self._offset - self._last_start)
        except FileNotFoundError:
            return False
        return hashlib.sha256(line).hexdigest() == self._last_digest

    def _leave(self, f: files.LogFile) -> None:
        """A file walked to its end (sealed): bytes after its last line are a problem."""
        seen = self._files[f.ident]
        seen.size, seen.mtime_ns, seen.name = f.size, f.mtime_ns, f.name
        if f.size > self._offset:
            extra = f.size - self._offset
            detail = f"{extra} bytes after the last complete line of sealed file {f.name}"
            self._add(Problem(Kind.BROKEN, self._seq + 1, detail, f.name, self._line + 1))

    def _read(self, f: files.LogFile, continuing: bool) -> None:
        if not continuing:
            self._files[f.ident] = _Walked(f.name, f.size, f.mtime_ns)
            self._offset = self._line = self._last_start = 0
            self._last_digest = _NOTHING
        seen = self._files[f.ident]
        seen.size, seen.mtime_ns, seen.name = f.size, f.mtime_ns, f.name
        first = not continuing
        for number, start, line in files.lines_from(f.path, self._offset, self._line, f.ident):
            self._step(f.name, number, line, first)
            first = False
            self._offset, self._line, self._last_start = start + len(line) + 1, number, start
            self._last_digest = hashlib.sha256(line + b"\n").hexdigest()
            if seen.first_seq is None:
                seen.first_seq = self._seq
            seen.last_seq, seen.records = self._seq, seen.records + 1

    def _step(self, name: str, number: int, line: bytes, first_in_file: bool) -> None:
        record = files.parse(line)
        expected = self._seq + 1
        if not is_record(record):
            detail = f"line {number} of {name}: not an audit record"
            self._add(Problem(Kind.BROKEN, expected, detail, name, number, expected))
            self._resync = True
            return
        assert record is not None
        seq, linked = record["seq"], record["prev"] == self._prev
        if record["hash"] != record_hash(record):
            detail = f"line {number} of {name}: hash mismatch (the record was edited)"
            self._add(Problem(Kind.BROKEN, seq, detail, name, number, seq))
        elif self._resync:
            self._resync = False
        elif seq == expected and linked:
            pass
        elif record["action"] == DISCONTINUITY and seq >= expected and linked:
            pass  # a seq jump an append explained; judged in _marker
        elif seq > expected and first_in_file:
            self._gap(expected, seq, name, number)
        else:
            why = f"seq {seq} after {self._seq}" if seq != expected else "prev does not link"
            detail = f"line {number} of {name}: {why}"
            self._add(Problem(Kind.BROKEN, expected, detail, name, number, expected))
        self._advance(record, name, number)

    def _gap(self, expected: int, seq: int, name: str, number: int) -> None:
        """Records missing between files (or before the first): a sealed file gone, or the
        end of one cut."""
        self._gaps.append((expected, seq - 1))
        gone = self.signed.sealed_file(expected)
        span = f"records {expected}–{seq - 1} are missing before line {number} of {name}"
        if gone and not (self.log.path.parent / gone).exists():
            detail = f"{span}: sealed file {gone} is gone"
            self._add(Problem(Kind.FILE_MISSING, expected, detail, gone))
        elif self._records == 0:
            self._add(Problem(Kind.FILE_MISSING, expected, f"{span}: the log's first files"))
        else:
            detail = f"{span}: tail cut after seq {expected - 1}"
            self._add(Problem(Kind.TAIL_CUT, expected, detail, name, number))

    def _advance(self, record: dict, name: str, number: int) -> None:
        before = (self._seq, self._prev)
        located = Located(
            record["seq"], record["hash"], record["prev"], record["action"], name, number
        )
        self._ring.append(located)
        if located.seq in self._wanted:
            self._found.setdefault(located.seq, located)
        self._seq, self._prev, self._records = record["seq"], record["hash"], self._records + 1
        if record["action"] == DISCONTINUITY:
            self._marker(record, before, located)
        elif record["action"] == UNCOMMITTED:
            self._uncommitted_claim(record, before, located)
        elif record["action"] == ACKNOWLEDGED:
            self._acks.append(_ack(record))

    def _marker(self, record: dict, before: tuple[int, str], at: Located) -> None:
        """An append found the files disagreeing with the catalog's head and said how: judged
        as `audit verify` would have judged it then, with the checkpoints signed before."""
        d = record["details"]
        head, tail = d.get("catalog_head") or {}, d.get("log_tail") or {}
        try:
            head_at = (int(head["seq"]), str(head["hash"]))
            tail_at = (int(tail["seq"]), str(tail["hash"]))
        except (KeyError, TypeError, ValueError):
            head_at, tail_at = (-1, ""), (-1, "")
        if tail_at != before or record["seq"] != max(head_at[0], tail_at[0]) + 1:
            detail = f"line {at.line} of {at.file}: a discontinuity record that does not match"
            self._add(Problem(Kind.BROKEN, at.seq, detail, at.file, at.line, at.seq))
            return
        if head_at[0] > tail_at[0]:
            self._gaps.append((tail_at[0] + 1, head_at[0]))
        missing = d.get("kind") == "file_missing"
        found = classify_head(self, head_at, tail_at[0], missing, at.seq, tolerate=False)
        for problem in found.problems:
            self._add(problem)
        self._anchors.update(found.anchors)

    def _uncommitted_claim(self, record: dict, before: tuple[int, str], at: Located) -> None:
        """An append found the record before it past the head, and says so; it may name only
        that record (a claim about any other is forged: a problem, never a silent skip)."""
        d = record["details"]
        if (d.get("seq"), d.get("hash")) != before:
            detail = f"line {at.line} of {at.file}: a not-committed record that does not match"
            self._add(Problem(Kind.BROKEN, at.seq, detail, at.file, at.line, at.seq))
            return
        self._claims[at.seq] = (before[0], str(d.get("action")))

    def _add(self, problem: Problem) -> None:
        self._problems.setdefault(problem.key, problem)

    # -- what the comparisons need ------------------------------------------------------------

    def located(self, seq: int) -> Located | None:
        """The record with this seq as walked (or looked up in the files)."""
        if seq in self._found:
            return self._found[seq]
        for entry in reversed(self._ring):
            if entry.seq == seq:
                return entry
        found = _lookup(self.log, seq)
        if found is not None:
            self._found[seq] = found
        return found

    def after(self, seq: int) -> list[Located] | None:
        """The records past `seq` if the last few walked hold them all (else None)."""
        out = [entry for entry in self._ring if entry.seq > seq]
        return out if len(out) < len(self._ring) or len(self._ring) < _RING else None

    def in_gap(self, seq: int) -> bool:
        return any(lo <= seq <= hi for lo, hi in self._gaps)

    # -- the report ---------------------------------------------------------------------------

    def _report(self, before: Head | None, after: Head | None, has_head: bool) -> Report:
        tail = self._seq
        crash: set[int] = set()
        problems = dict(self._problems)
        anchors = dict(self._anchors)
        notes: list[str] = []
        head = after if after is not None and after.seq <= tail else before
        if head is not None and before is not None and tail < before.seq:
            head = before
        if head is not None:
            live_missing = not self.log.path.exists()
            found = classify_head(self, (head.seq, head.hash), tail, live_missing, None)
            for problem in found.problems:
                problems.setdefault(problem.key, problem)
            anchors.update(found.anchors)
            notes += found.notes
            crash = found.uncommitted
        elif has_head:
            notes.append("the catalog has no audit head yet: the next record anchors it")
        checked = self.signed.compare(self, tail)
        for problem in checked.problems:
            if (str(Kind.FILE_MISSING), problem.seq) not in problems:  # the same cut
                problems.setdefault(problem.key, problem)
        anchors.update(checked.anchors)
        replaced = self.signed.replaced(anchors)
        if replaced is not None:
            problems.setdefault(replaced.key, replaced)
        uncommitted, claimed = self._effective_claims(crash)
        notes += claimed + self._notes(tail)
        acks = [a for a in self._acks if a.seq not in uncommitted and self.signed.signs_ack(a.seq)]
        ordered = sorted(problems.values(), key=lambda p: (p.seq, str(p.kind)))
        return Report(
            records=self._records,
            tail_seq=tail,
            files=[
                FileSummary(w.name, w.first_seq, w.last_seq, w.records)
                for w in self._files.values()
            ],
            head=after or before,
            checkpoints=self.signed.summary(),
            problems=acknowledge(ordered, acks),
            notes=notes,
            uncommitted=frozenset(uncommitted),
        )

    def _effective_claims(self, crash: set[int]) -> tuple[set[int], list[str]]:
        """The records that never committed: the one past the head now, and those named by
        `audit.uncommitted` records — latest first, since a claim made by a record that itself
        never committed (one written outside ccvault) is void."""
        uncommitted, notes = set(crash), []
        for marker, (seq, action) in sorted(self._claims.items(), reverse=True):
            if marker in uncommitted:
                notes.append(
                    f"record seq {marker} says seq {seq} did not commit, but did not "
                    "commit itself: its claim is void"
                )
                continue
            uncommitted.add(seq)
            notes.append(
                f"record seq {seq} ({action}) was appended but its transaction did not commit "
                "(a crash or a failed commit, or it was written outside ccvault): it records "
                "nothing that happened, and `hold rebuild` skips it"
            )
        return uncommitted, notes[::-1]

    def _notes(self, tail: int) -> list[str]:
        notes = []
        last = self.signed.last_matched()
        if last is not None and tail > last:
            notes.append(f"{tail - last} record(s) after the last signed checkpoint (seq {last})")
        elif last is None and tail:
            notes.append("no signed checkpoint yet")
        if self.signed.trusted is None and self.signed.summary().checked:
            notes.append(
                "checkpoints checked against the key each carries (no trusted key: pass --key)"
            )
        listing = self.log.files()
        if listing and listing[-1].path == self.log.path:
            torn = listing[-1].size - self._offset
            if torn > 0:
                notes.append(f"torn last line ({torn} bytes), dropped by the next append")
        return notes


def verifier(
    log: AuditLog, head: Callable[[], Head | None] | None, given: bytes | None = None
) -> Verifier:
    """A verifier trusting, in this order: the key given (`--key`), the installation's key
    file (when readable), the key of the checkpoint the catalog's head holds; else none (each
    checkpoint is checked against its own key, and the report says so)."""
    if given is not None:
        return Verifier(log, head, given, "--key")
    raw = None
    if log.key is not None:
        try:
            raw = installation_public_key(log.key.path)
        except (PermissionError, ValueError, UsageError):
            raw = None
    if raw is not None:
        return Verifier(log, head, raw, "the key file")
    current = head() if head else None
    saved = current.checkpoint.public_raw if current and current.checkpoint else None
    return Verifier(log, head, saved, "the catalog" if saved else None)


def _ack(record: dict) -> Acknowledgment:
    d = record["details"]
    covers = set()
    for item in d.get("problems") or []:
        if isinstance(item, dict) and type(item.get("seq")) is int:
            covers.add((str(item.get("kind")), item["seq"]))
    return Acknowledgment(
        record["seq"],
        str(record["actor"]),
        str(d.get("reason", "")),
        str(record["time"]),
        frozenset(covers),
    )


def _lookup(log: AuditLog, seq: int) -> Located | None:
    """Find a record by seq in the files (only for a seq the walk did not keep): the sealed
    names say which file can hold it."""
    listing = log.files()
    for index, f in enumerate(listing):
        nxt = listing[index + 1].first_seq if index + 1 < len(listing) else None
        if nxt is not None and nxt <= seq:
            continue
        for number, _, line in files.lines_from(f.path):
            record = files.parse(line)
            if is_record(record) and record["seq"] == seq:  # type: ignore[index]
                assert record is not None
                return Located(
                    seq, record["hash"], record["prev"], record["action"], f.name, number
                )
    return None
