"""Why there is no footage at an instant: `ccvault explain` says so plainly instead of "not
found" — deleted by a retention pass (when, by whom, under which rule, from the audit log),
not recorded yet (a future instant), or never recorded.

The audit log is the record: a purge drops the segment's row but appends one `purge` record
naming every segment it deleted (camera, start, end) and the rules of its batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from ccvault.timefmt import local_text, parse_time


class GoneReason(StrEnum):
    DELETED = "deleted"  # a retention pass deleted it (audit record `purge`)
    FUTURE = "future"  # the instant has not happened yet
    NEVER_RECORDED = "never_recorded"  # no segment and no purge of one: nothing was recorded


@dataclass(frozen=True)
class Gone:
    """What the catalog and the audit log say about an instant without footage."""

    reason: GoneReason
    deleted_ms: int | None = None
    actor: str | None = None
    rules: dict[str, int] = field(default_factory=dict)
    audit_seq: int | None = None

    def sentence(self, tz: ZoneInfo) -> str:
        """One sentence for people, times in the configured zone."""
        if self.reason is GoneReason.FUTURE:
            return "that time has not come yet: nothing is recorded there so far"
        if self.reason is GoneReason.NEVER_RECORDED:
            return (
                "nothing was ever recorded then (the camera was off, offline or not installed"
                " yet); `ccvault segments` lists what there is"
            )
        assert self.deleted_ms is not None
        rules = " or ".join(sorted(self.rules)) or "the retention policy"
        return (
            f"the footage is gone: deleted on {local_text(self.deleted_ms, tz)} by "
            f"{self.actor} under {rules} (audit record {self.audit_seq})"
        )


def why_gone(
    records: Iterable[dict[str, Any]], camera: str, at_ms: int, now_ms: int, tz: ZoneInfo
) -> Gone:
    """The latest `purge` record that deleted `camera`'s segment holding `at_ms`, else a
    future or never-recorded instant. `records` is the audit log in chain order."""
    if at_ms > now_ms:
        return Gone(GoneReason.FUTURE)
    found = None
    for record in records:
        if record.get("action") != "purge":
            continue
        details = record.get("details") or {}
        if any(_holds(s, camera, at_ms) for s in details.get("segments") or ()):
            found = record
    if found is None:
        return Gone(GoneReason.NEVER_RECORDED)
    return Gone(
        GoneReason.DELETED,
        deleted_ms=parse_time(str(found["time"]), tz, 0),
        actor=str(found.get("actor")),
        rules=dict((found.get("details") or {}).get("rules") or {}),
        audit_seq=found.get("seq"),
    )


def _holds(segment: Any, camera: str, at_ms: int) -> bool:
    return (
        isinstance(segment, dict)
        and segment.get("camera") == camera
        and isinstance(segment.get("start_ms"), int)
        and isinstance(segment.get("end_ms"), int)
        and segment["start_ms"] <= at_ms < segment["end_ms"]
    )
