"""The JSON contract of footage, motion, timelines and holds, for the HTTP API and `--json`.

One model per object, so `ccvault segments --json` and `GET /api/segments` cannot drift: the
CLI adds only `path` (`SegmentFile`), which the API never sends — a response names footage by
id and camera, never by where it lies on disk. Times are UTC `…Z` strings plus `_ms` integers.
Only pydantic is imported here: the CLI loads this module without FastAPI.
"""

from __future__ import annotations

import sqlite3

from pydantic import BaseModel, ConfigDict, Field

from ccvault.catalog import queries
from ccvault.catalog.rows import AlertRow, AnalysisState, Segment, StoredSpan
from ccvault.retention.planner import Action
from ccvault.timefmt import utc_text, utc_text_or_none


class Out(BaseModel):
    # populate_by_name: `from_`/`from` both work in code; the JSON key is the alias.
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    def as_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


class SegmentOut(Out):
    id: int
    camera: str
    start: str
    end: str
    start_ms: int
    end_ms: int
    bytes: int
    sha256: str
    volume: str = Field(description="The volume's name (never its path).")
    state: str = Field(description="ok | missing (the file is gone; the row is kept).")
    codec: str
    width: int
    height: int
    analysed: bool
    activity: bool = Field(description="The padded range overlaps motion or lighting.")
    origin: str = Field(
        description="recorded (by this ccvault) | imported (its times are what the importer "
        "claimed) | adopted (found on a volume, not recorded into this catalog)."
    )
    integrity: str = Field(
        description="unchecked | ok | corrupt, from the latest re-hash (the scrub, or "
        "`ccvault verify`): a corrupt file no longer matches its SHA-256 (it is kept as it is)."
    )
    node: str | None = Field(
        None, description="The node that holds it (its volume's); null before nodes existed."
    )
    unavailable: str | None = Field(
        None,
        description='Why it cannot be played from here now ("node b down since …"); null '
        "when it can.",
    )

    @classmethod
    def of(cls, seg: Segment) -> SegmentOut:
        return cls(**_segment_fields(seg))

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> SegmentOut:
        """Straight from a `search.SEGMENT_ROW` row, by column name: a listing's hot path."""
        return cls(
            id=r["id"],
            camera=r["camera"],
            volume=r["volume"],
            start=utc_text(r["start_ms"]),
            end=utc_text(r["end_ms"]),
            start_ms=r["start_ms"],
            end_ms=r["end_ms"],
            bytes=r["bytes"],
            sha256=r["sha256"],
            codec=r["codec"],
            width=r["width"],
            height=r["height"],
            state=r["state"],
            analysed=r["analysis"] == AnalysisState.ANALYSED,
            activity=bool(r["activity"]),
            origin=r["origin"],
            integrity=r["integrity"],
            node=r["node"],
        )


class SegmentFile(SegmentOut):
    """The CLI's row: a segment plus its absolute file path (never sent over HTTP)."""

    path: str

    @classmethod
    def at(cls, seg: Segment, path: str) -> SegmentFile:
        return cls(**_segment_fields(seg), path=path)


def _segment_fields(seg: Segment) -> dict:
    return {
        "id": seg.id,
        "camera": seg.camera,
        "start": utc_text(seg.start_ms),
        "end": utc_text(seg.end_ms),
        "start_ms": seg.start_ms,
        "end_ms": seg.end_ms,
        "bytes": seg.bytes,
        "sha256": seg.sha256,
        "volume": seg.volume,
        "state": seg.state,
        "codec": seg.codec,
        "width": seg.width,
        "height": seg.height,
        "analysed": seg.analysis == AnalysisState.ANALYSED,
        "activity": bool(seg.activity),
        "origin": seg.origin,
        "integrity": seg.integrity,
        "node": seg.node,
    }


class SpanOut(Out):
    id: int
    camera: str
    kind: str = Field(description="motion | lighting")
    start: str = Field(description="First moving frame (unpadded).")
    end: str = Field(description="Last moving frame.")
    start_ms: int
    end_ms: int
    peak: float = Field(description="Highest motion score, 0-1.")
    area: float = Field(description="Largest moving fraction of the frame, 0-1.")
    bbox: tuple[float, float, float, float] = Field(
        description="Union of the moving regions: relative x0, y0, x1, y1."
    )
    open: bool = Field(description="Still going on at the end of the newest analysed footage.")
    people_max: int | None = Field(
        None, description="Most people counted on one sampled frame (null: not counted)."
    )

    @classmethod
    def of(cls, stored: StoredSpan) -> SpanOut:
        span = stored.span
        return cls(
            id=stored.id,
            camera=stored.camera,
            kind=span.kind,
            start=utc_text(span.start_ms),
            end=utc_text(span.end_ms),
            start_ms=span.start_ms,
            end_ms=span.end_ms,
            peak=round(span.peak, 4),
            area=round(span.area, 4),
            bbox=tuple(round(v, 4) for v in span.bbox),  # type: ignore[arg-type]
            open=stored.open,
            people_max=span.people_max,
        )


class RangeOut(Out):
    start: str
    end: str
    start_ms: int
    end_ms: int

    @classmethod
    def of(cls, start_ms: int, end_ms: int) -> RangeOut:
        return cls(start=utc_text(start_ms), end=utc_text(end_ms), start_ms=start_ms, end_ms=end_ms)


class CameraOut(Out):
    name: str
    enabled: bool
    state: str = Field(
        description="As `ccvault status`: disabled, connecting, recording, stalled, failing "
        "(frames arrive, nothing is stored) or offline."
    )
    since: str | None
    since_ms: int | None
    first_footage: str | None = Field(description="Start of the oldest stored segment.")
    first_footage_ms: int | None
    last_footage: str | None = Field(description="End of the newest stored segment.")
    last_footage_ms: int | None
    room: str | None = Field(
        None, description="The [[access.rooms]] room this camera watches, if any."
    )
    node: str | None = Field(
        None, description="The node recording it when that is another node (null: this one)."
    )
    unavailable: str | None = Field(
        None, description="Why its footage cannot be played from here now (its node is down)."
    )

    @classmethod
    def of(
        cls,
        name: str,
        enabled: bool,
        state: str,
        since_ms: int | None,
        footage: tuple[int | None, int | None],
        **where: str | None,
    ) -> CameraOut:
        """Each time in both forms; `where`: its room, or the node recording it."""
        first, last = footage
        return cls(
            name=name,
            enabled=enabled,
            state=state,
            since=utc_text_or_none(since_ms),
            since_ms=since_ms,
            first_footage=utc_text_or_none(first),
            first_footage_ms=first,
            last_footage=utc_text_or_none(last),
            last_footage_ms=last,
            **where,
        )


class HoldOut(Out):
    """As `ccvault hold list --json` (`retention.holds.listing`)."""

    id: int
    state: str = Field(description="active | expired | released")
    cameras: list[str] = Field(description="Empty: every camera.")
    from_: str = Field(alias="from")
    to: str
    from_ms: int
    to_ms: int
    until: str | None
    until_ms: int | None
    reason: str
    actor: str
    created: str
    released: str | None
    released_by: str | None
    release_reason: str | None


class HoldIn(BaseModel):
    """A new hold: times as the CLI takes them (ISO 8601, `now`, `-2h`; local zone)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    cameras: list[str] = Field(default_factory=list, description="Empty: every camera.")
    from_: str = Field(alias="from", max_length=64)
    to: str = Field(max_length=64)
    reason: str = Field(max_length=1000)
    until: str | None = Field(None, max_length=64, description="Ends by itself (default never).")


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=1000)


class TimelineOut(Out):
    """One local calendar day of one camera, minute by minute (23, 24 or 25 hours)."""

    camera: str
    date: str = Field(description="YYYY-MM-DD in `timezone`.")
    timezone: str
    start: str
    end: str
    start_ms: int
    end_ms: int
    minutes: int = Field(description="Minutes in this local day (1380, 1440 or 1500).")
    coverage: list[float] = Field(
        description="Per minute from `start`: the fraction covered by stored footage."
    )
    gaps: list[RangeOut] = Field(description="Ranges of the day without footage (≥ 1 s).")
    motion_minutes: list[int] = Field(description="Indexes of minutes with a motion span.")
    motion_count: int = Field(description="Motion spans overlapping the day.")
    holds: list[HoldOut] = Field(
        description="Active holds covering this camera that overlap the day."
    )


class AlertOut(Out):
    """One alert: firing, or resolved (a one-off event is resolved when raised)."""

    id: int
    name: str = Field(description="e.g. camera_offline; see [alerts] in the config")
    status: str = Field(description="firing or resolved")
    severity: str
    summary: str
    labels: dict[str, str]
    details: dict[str, str]
    event: bool = Field(description="a one-off event (sent once)")
    started: str = Field(description="UTC, when it started firing or happened")
    resolved: str | None
    last_notified: str | None
    notifications: int

    @classmethod
    def of(cls, row: AlertRow) -> AlertOut:
        return cls(
            id=row.id or 0,
            name=row.name,
            status="resolved" if row.resolved_ms is not None else "firing",
            severity=row.severity,
            summary=row.summary,
            labels=row.labels,
            details=row.details,
            event=row.event,
            started=utc_text(row.started_ms),
            resolved=utc_text_or_none(row.resolved_ms),
            last_notified=utc_text_or_none(row.notified_ms),
            notifications=row.notices,
        )


class AlertsOut(Out):
    active: list[AlertOut] = Field(description="firing now, newest first")
    recent: list[AlertOut] = Field(description="resolved within [alerts] history_days")

    @classmethod
    def read(cls, conn: sqlite3.Connection, now_ms: int, history_days: float) -> AlertsOut:
        rows = queries.alerts(conn, now_ms - round(history_days * 86_400_000))
        return cls(
            active=[AlertOut.of(r) for r in rows if r.resolved_ms is None],
            recent=[AlertOut.of(r) for r in rows if r.resolved_ms is not None],
        )


class ExplanationOut(Out):
    """Why a segment is kept and what its next retention pass does with it, as
    `ccvault explain --json` and `GET /api/explain` say it (`views.explain`)."""

    node: str = Field(description="The node that answered: it records the camera, its policy.")
    segment_id: int
    camera: str
    start: str
    end: str
    start_ms: int
    end_ms: int
    action: Action = Field(
        description="What the next retention pass does (wait: a deletion the object's S3 "
        "Object Lock holds back)."
    )
    rule: str = Field(description="What decides: a config key, a hold, an access visit.")
    bytes: int
    volume: str = Field(description="The volume's name (never its path).")
    premature: bool = Field(description="A deletion inside min_days (disk pressure only).")
    until: str | None = Field(description="Kept until then; null: not by time.")
    until_ms: int | None
    target: str | None = Field(description="migrate: the volume it moves to.")
    waits_for: str | None = Field(description="wait: object_lock or legal_hold.")
    lock_mode: str | None = Field(description="wait: governance or compliance.")
    holds: list[str] = Field(description="The active holds covering it.")
    activity: bool = Field(description="Motion, or an access visit, near it.")
    analysed: bool = Field(description="false: not analysed yet, kept as if it had activity.")
    thinned: bool = Field(description="Cut to its keyframes already.")
