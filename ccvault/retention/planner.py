"""The retention planner: pure decisions about segments, each with the rule that made it.

No I/O, no clock: callers pass `now_ms`, the candidates (in any order), what protects footage
(holds, export pins), each camera's policy and the room on archive volumes. Every candidate
gets a `Decision` — kept ones too, with the rule that keeps them and until when — so a dry run
and a real run print the same plan, and `explain` answers from the same code.

Time rules: the privacy ceiling (`max_days`) counts from a segment's *start* (its oldest
picture may not outlive the ceiling); the keep windows (`continuous_days`, `motion_days`,
`min_days`) count from its *end* (every picture in it is kept at least that long). The pressure
floor (`pressure_floor_hours`) counts back from each camera's *newest* footage: disk pressure
never deletes or thins what ends inside it, whoever fills the disk.

S3 Object Lock: a segment archived to a locking bucket carries its object's retain-until and
legal hold (as the catalog recorded them when ccvault set them). A deletion the lock forbids
now is no deletion but a `WAIT` until the lock ends — named, with the rule that wants the
footage gone — so the plan never holds a delete the store would refuse (`unless_locked`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from ccvault.config.policy import RetentionSettings

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


class Action(StrEnum):
    KEEP = "keep"
    DELETE = "delete"
    THIN = "thin"
    MIGRATE = "migrate"
    WAIT = "wait"  # a deletion that waits for the object's S3 Object Lock to end


KEEP, DELETE, THIN, MIGRATE = Action.KEEP, Action.DELETE, Action.THIN, Action.MIGRATE
WAIT = Action.WAIT
# Planning estimate of what thinning frees (bench/grooming.py measures the real ratio); the
# pressure check after the work re-reads the disk, so an estimate that is off only delays.
THIN_SAVES = 0.5


@dataclass(frozen=True, slots=True)
class Policy:
    """One camera's retention in milliseconds."""

    continuous_ms: int
    motion_ms: int
    max_ms: int
    min_ms: int
    hot_ms: int
    thin_after_ms: int  # 0: grooming off
    max_bytes: int | None
    floor_ms: int = 24 * HOUR_MS  # each camera's newest footage that pressure never takes
    access_ms: int = 0  # 0: visits keep nothing longer

    @classmethod
    def from_settings(cls, s: RetentionSettings) -> Policy:
        def ms(days: float) -> int:
            return round(days * DAY_MS)

        return cls(
            ms(s.continuous_days),
            ms(s.motion_days),
            ms(s.max_days),
            ms(s.min_days),
            ms(s.hot_days),
            ms(s.thin_after_days),
            s.max_bytes,
            round(s.pressure_floor_hours * HOUR_MS),
            ms(s.access_days) if s.access_days is not None else 0,
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the planner needs to know of a segment."""

    id: int
    camera: str
    volume: str
    start_ms: int
    end_ms: int
    bytes: int
    activity: bool  # the padded range overlaps activity
    analysed: bool  # False: activity not known yet, so treated as activity
    thinned: bool
    role: str  # of its volume: hot | archive
    # S3 Object Lock of its object on a locking bucket (catalog.object_locks); None: no lock.
    lock_until_ms: int | None = None
    lock_mode: str | None = None  # governance | compliance
    legal_hold: bool = False  # as last set on the object (a release not taken yet: still on)
    files_here: bool = True  # False: an object in a bucket, not a file on this node's disks

    @property
    def idle(self) -> bool:
        return self.analysed and not self.activity

    @property
    def thinnable(self) -> bool:
        """Idle, not thinned yet, and a file here: the keyframes-only copy is cut from the
        file, so an archived object is never proposed (a plan the executor could only skip
        would show a dry run a thinning that never happens)."""
        return self.idle and not self.thinned and self.files_here


@dataclass(frozen=True, slots=True)
class Protection:
    """A hold or an export pin: footage it covers is never deleted or thinned."""

    kind: str  # hold | export_pin
    id: int
    cameras: frozenset[str] | None  # None: every camera
    from_ms: int
    to_ms: int
    until_ms: int | None  # None: until released

    @property
    def rule(self) -> str:
        return f"hold:{self.id}" if self.kind == "hold" else "export_pin"

    def covers(self, c: Candidate) -> bool:
        return self.overlaps(c.camera, c.start_ms, c.end_ms)

    def overlaps(self, camera: str, start_ms: int, end_ms: int) -> bool:
        """Does it cover any of camera's [start_ms, end_ms)?"""
        return (
            (self.cameras is None or camera in self.cameras)
            and start_ms < self.to_ms
            and end_ms > self.from_ms
        )

    def active(self, now_ms: int) -> bool:
        return self.until_ms is None or self.until_ms > now_ms


@dataclass(frozen=True, slots=True)
class AccessCover:
    """A visit's footage: the room's cameras from padding before the entry to after the exit.
    It keeps that footage `access_days` after the visit (longer than the idle and motion
    windows, never past the ceiling); an open visit keeps it while it lasts."""

    visit_id: int
    person: str
    role: str | None
    cameras: frozenset[str]
    from_ms: int
    to_ms: int | None  # None: the visit is still open

    def covers(self, c: Candidate) -> bool:
        return (
            c.camera in self.cameras
            and c.end_ms > self.from_ms
            and (self.to_ms is None or c.start_ms < self.to_ms)
        )

    def until(self, policy: Policy) -> int | None:
        return None if self.to_ms is None else self.to_ms + policy.access_ms

    @property
    def rule(self) -> str:
        return f"access:visit {self.visit_id} ({self.role or 'no role'} {self.person})"


@dataclass(frozen=True, slots=True)
class Decision:
    segment: Candidate
    action: Action
    rule: str
    until_ms: int | None = None  # keep: when this segment's fate may change; None: not by time
    premature: bool = False  # deleted inside min_days (disk pressure only)
    target: str | None = None  # migrate: the destination volume
    waits_for: str | None = None  # wait: "object_lock" (until until_ms) or "legal_hold"

    def as_json(self) -> dict:
        c = self.segment
        return {
            "segment_id": c.id,
            "camera": c.camera,
            "start_ms": c.start_ms,
            "end_ms": c.end_ms,
            "action": self.action,
            "rule": self.rule,
            "bytes": c.bytes,
            "volume": c.volume,
            "premature": self.premature,
            "until_ms": self.until_ms,
            "target": self.target,
            "waits_for": self.waits_for,
            "lock_mode": self.segment.lock_mode if self.waits_for else None,
        }


@dataclass
class ArchiveRoom:
    """Bytes each archive volume can still take this pass, in the order they are tried."""

    free: dict[str, int] = field(default_factory=dict)
    # Set when a segment found no room: the rest of a pass need not look for more to move.
    exhausted: bool = False

    def take(self, size: int, exclude: str) -> str | None:
        for name, room in self.free.items():
            if name != exclude and room >= size:
                self.free[name] = room - size
                return name
        self.exhausted = True
        return None

    @property
    def open(self) -> bool:
        return not self.exhausted and any(room > 0 for room in self.free.values())


def protection_for(
    c: Candidate, protections: Sequence[Protection], now_ms: int
) -> Protection | None:
    """The protection that keeps c longest (an open-ended hold beats any dated one)."""
    best = None
    for p in protections:
        if not (p.active(now_ms) and p.covers(c)):
            continue
        if best is None or (
            best.until_ms is not None and (p.until_ms is None or p.until_ms > best.until_ms)
        ):
            best = p
    return best


def decide(
    c: Candidate,
    policy: Policy,
    protections: Sequence[Protection],
    now_ms: int,
    archives: ArchiveRoom,
    covers: Sequence[AccessCover] = (),
) -> Decision:
    """The routine fate of one segment: the first rule below that applies decides. A visit's
    cover sets aside the idle and motion windows (and thinning), not the ceiling."""
    held = protection_for(c, protections, now_ms)
    if held is not None:
        return Decision(c, KEEP, held.rule, held.until_ms)
    visit = access_for(c, policy, covers, now_ms)
    for rule in ROUTINE_RULES:
        if rule.applies(c, policy, now_ms):
            if visit is not None and rule.name != "max_days" and rule.action != MIGRATE:
                continue  # kept for the visit
            if rule.action == MIGRATE:
                target = archives.take(c.bytes, exclude=c.volume)
                if target is None:
                    continue  # no archive has room: it stays hot, pressure frees space if needed
                return Decision(c, MIGRATE, rule.name, target=target)
            return unless_locked(Decision(c, rule.action, rule.name), now_ms)
    if visit is not None:
        until = visit.until(policy)
        ceiling = c.start_ms + policy.max_ms
        return Decision(c, KEEP, visit.rule, ceiling if until is None else min(until, ceiling))
    rule = "min_days" if c.end_ms > now_ms - policy.min_ms else "window"
    return Decision(c, KEEP, rule, _next_change(c, policy, now_ms))


def unless_locked(d: Decision, now_ms: int) -> Decision:
    """A deletion the segment's object lock forbids at now_ms becomes a wait for the lock: a
    legal hold (no date: until it is released on the object), else a retain-until still
    ahead. The rule that wants the footage gone stays named; nothing else changes."""
    c = d.segment
    if d.action != DELETE:
        return d
    if c.legal_hold:
        return Decision(c, WAIT, d.rule, None, waits_for="legal_hold")
    if c.lock_until_ms is not None and c.lock_until_ms > now_ms:
        return Decision(c, WAIT, d.rule, c.lock_until_ms, waits_for="object_lock")
    return d


def access_for(
    c: Candidate, policy: Policy, covers: Sequence[AccessCover], now_ms: int
) -> AccessCover | None:
    """The visit that keeps c longest now (an open one beats any closed), if any."""
    if not policy.access_ms:
        return None
    best = None
    for cover in covers:
        until = cover.until(policy)
        if not cover.covers(c) or (until is not None and until <= now_ms):
            continue
        if best is None or (
            best.until(policy) is not None and (until is None or until > (best.until(policy) or 0))
        ):
            best = cover
    return best


Applies = Callable[[Candidate, Policy, int], bool]


@dataclass(frozen=True, slots=True)
class RoutineRule:
    name: str  # the config key it enforces; what dry runs and `explain` print
    applies: Applies
    action: Action


# The fixed order in which routine rules are tried; the first that applies decides.
ROUTINE_RULES: tuple[RoutineRule, ...] = (
    RoutineRule("max_days", lambda c, p, now: c.start_ms <= now - p.max_ms, DELETE),
    RoutineRule(
        "motion_days", lambda c, p, now: not c.idle and c.end_ms <= now - p.motion_ms, DELETE
    ),
    RoutineRule(
        "continuous_days", lambda c, p, now: c.idle and c.end_ms <= now - p.continuous_ms, DELETE
    ),
    RoutineRule(
        "thin_after_days",
        lambda c, p, now: c.thinnable and p.thin_after_ms > 0 and c.end_ms <= now - p.thin_after_ms,
        THIN,
    ),
    RoutineRule(
        "hot_days", lambda c, p, now: c.role == "hot" and c.end_ms <= now - p.hot_ms, MIGRATE
    ),
)


def _next_change(c: Candidate, p: Policy, now_ms: int) -> int:
    """When a kept segment's fate changes next by time alone (a migration already due but
    without room is retried every pass, so it is not a future time)."""
    times = [c.start_ms + p.max_ms, c.end_ms + (p.continuous_ms if c.idle else p.motion_ms)]
    if c.thinnable and p.thin_after_ms:
        times.append(c.end_ms + p.thin_after_ms)
    if c.role == "hot":
        times.append(c.end_ms + p.hot_ms)
    return min(t for t in times if t > now_ms)


def plan(
    candidates: Iterable[Candidate],
    policies: dict[str, Policy],
    protections: Sequence[Protection],
    now_ms: int,
    archives: ArchiveRoom,
    covers: Sequence[AccessCover] = (),
) -> list[Decision]:
    """Routine decisions for a batch, oldest first (so archive room goes to the oldest)."""
    ordered = sorted(candidates, key=lambda c: (c.start_ms, c.id))
    return [decide(c, policies[c.camera], protections, now_ms, archives, covers) for c in ordered]


def over_quota(
    oldest_first: Iterable[Candidate],
    excess: int,
    rule: str,
    policies: dict[str, Policy],
    protections: Sequence[Protection],
    now_ms: int,
    taken: set[int],
) -> tuple[list[Decision], int]:
    """Deletions that bring a camera's bytes under its `max_bytes`: oldest first, never held
    or pinned footage, never inside `min_days` (a quota yields to the promise; the forecast
    shows the conflict). `taken`: ids already decided (updated here). Returns the decisions
    and the excess left."""
    out = []
    for c in oldest_first:
        if excess <= 0 or c.end_ms > now_ms - policies[c.camera].min_ms:
            break  # done, or everything after this one is younger still
        if c.id in taken or protection_for(c, protections, now_ms) is not None:
            continue
        decision = unless_locked(Decision(c, DELETE, rule), now_ms)
        out.append(decision)
        taken.add(c.id)
        if decision.action == DELETE:  # a wait frees nothing yet
            excess -= c.bytes
    return out, excess


def pressure_floors(
    newest_end: Mapping[str, int], policies: Mapping[str, Policy], now_ms: int
) -> dict[str, int]:
    """Per camera, the end time after which pressure deletes and thins nothing: its newest
    footage's end (never later than now, so a segment stamped in the future cannot shrink the
    floor) minus its `pressure_floor_hours`. Measured from the newest footage, not from now: a
    camera cut off two days ago keeps the last day it saw."""
    return {
        camera: min(end, now_ms) - policies[camera].floor_ms
        for camera, end in newest_end.items()
        if camera in policies
    }


def in_floor(c: Candidate, floors: Mapping[str, int]) -> bool:
    """Inside its camera's pressure floor; a camera the floors do not name is kept whole
    (they name every camera with footage: failing safe costs nothing)."""
    return c.end_ms > floors.get(c.camera, c.end_ms - 1)


@dataclass(frozen=True, slots=True)
class PressureStep:
    number: int
    action: Action
    applies: Applies
    premature: bool = False


# The fixed order in which a volume under its reserve is freed (oldest first within a step).
PRESSURE_STEPS: tuple[PressureStep, ...] = (
    PressureStep(1, MIGRATE, lambda c, p, now: True),
    PressureStep(2, THIN, lambda c, p, now: c.thinnable and p.thin_after_ms > 0),
    PressureStep(3, DELETE, lambda c, p, now: c.idle and c.end_ms <= now - p.min_ms),
    PressureStep(4, DELETE, lambda c, p, now: not c.idle and c.end_ms <= now - p.min_ms),
    PressureStep(5, DELETE, lambda c, p, now: c.idle, premature=True),
    PressureStep(6, DELETE, lambda c, p, now: not c.idle, premature=True),
)


def relieve(
    step: PressureStep,
    oldest_first: Iterable[Candidate],
    need: int,
    rule: str,
    policies: dict[str, Policy],
    protections: Sequence[Protection],
    now_ms: int,
    archives: ArchiveRoom,
    taken: set[int],
    floors: Mapping[str, int],
) -> tuple[list[Decision], int]:
    """One pressure step over a volume's candidates: decisions and the bytes still needed.

    `taken` holds the ids already decided by earlier steps (updated here). Footage inside its
    camera's floor (`pressure_floors`) may move to an archive, never be deleted or thinned."""
    out = []
    for c in oldest_first:
        if need <= 0:
            break
        if c.id in taken or not step.applies(c, policies[c.camera], now_ms):
            continue
        if step.action != MIGRATE and in_floor(c, floors):
            continue
        if protection_for(c, protections, now_ms) is not None:
            continue
        if step.action == MIGRATE:
            target = archives.take(c.bytes, exclude=c.volume)
            if target is None:
                break  # no archive can take more
            decision = Decision(c, MIGRATE, rule, target=target)
            need -= c.bytes
        elif step.action == THIN:
            decision = Decision(c, THIN, rule)
            need -= int(c.bytes * THIN_SAVES)
        else:
            decision = unless_locked(Decision(c, DELETE, rule, premature=step.premature), now_ms)
            need -= c.bytes if decision.action == DELETE else 0
        taken.add(c.id)
        out.append(decision)
    return out, need
