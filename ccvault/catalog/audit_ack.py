"""An admin's acknowledgment of a broken audit chain (`ccvault audit acknowledge`, the API).

What it means: the admin accepts the problems `audit verify` reports now as known — records
lost, a file replaced, a catalog restored — with a reason. It is an audit record
(`audit.acknowledged`, listing each problem by kind and seq) signed at once by a checkpoint,
and it counts only while that signature holds: whoever can write the log but lacks the key
cannot acknowledge anything. The problems stay in every `audit verify` report for good, marked
acknowledged (by whom, when, why); `ok` and the `audit_chain_broken` alert stop counting them,
so the alert resolves once the chain verifies from the new checkpoint on. A problem found
later is a new problem. An acknowledgment makes no forged line true: `hold rebuild` still
stops before the first suspect record.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccvault.catalog.audit_checkpoints import CheckpointKind
from ccvault.catalog.audit_report import Problem, Report
from ccvault.catalog.audit_verify import ACKNOWLEDGED, Verifier
from ccvault.catalog.writer import CatalogWriter
from ccvault.catalog.writes.audit import read_head, write_head
from ccvault.errors import Refused, UsageError


@dataclass(frozen=True)
class Acknowledged:
    seq: int  # the audit.acknowledged record's
    problems: list[Problem]

    def as_json(self) -> dict:
        return {"seq": self.seq, "acknowledged": [p.as_json() for p in self.problems]}


def acknowledge(
    writer: CatalogWriter,
    verifier: Verifier,
    reason: str,
    actor: str,
    now_ms: int,
) -> Acknowledged:
    """Record and sign the acknowledgment of every open problem. The long walk runs before
    the write lock is taken; under it only what was appended since is read, after the files'
    disagreement with the head (if any) is written down as the log will show it from now on."""
    reason = reason.strip()
    if not reason:
        raise UsageError("--reason", "must say why the break is accepted")
    log = writer.audit_log
    if log is None or log.key is None or log.key.signer() is None:
        path = log.key.path if log and log.key else "the signing key"
        raise Refused(
            str(path),
            "cannot be read here, and an acknowledgment must be signed: run this as the "
            "daemon's user, or acknowledge through the API",
        )
    verifier.check()
    with writer.transaction() as conn:
        node = log.node  # the chain this file is
        head = log.reconcile(read_head(conn, node), actor, now_ms)
        if head is not None:
            write_head(conn, head, node)
        report = verifier.check(lambda: read_head(conn, node))
        if not report.ok:
            listed = [{"kind": str(p.kind), "seq": p.seq, "detail": p.detail} for p in report.open]
            details = {"reason": reason, "problems": listed}
            writer.audit(actor, ACKNOWLEDGED, "audit", details, now_ms, CheckpointKind.ACK)
            seq = read_head(conn, node).seq  # type: ignore[union-attr]
    if report.ok:
        raise Refused("audit log", _nothing(report))
    return Acknowledged(seq, report.open)


def _nothing(report: Report) -> str:
    if report.problems:
        return "nothing to acknowledge: every problem is acknowledged already"
    return "nothing to acknowledge: the chain verifies"
