"""The pure retention planner: one fixture catalog × named cases → tests/golden/retention/.

No catalog, no files, no clock: the catalog is built here, `NOW` is fixed. Each case renders its
decisions to `tests/golden/retention/<case>.json`; `pytest --update-goldens` rewrites them and
the reviewer reads the diff. Every case is also checked for the invariants that hold whatever
the policy: conservation, a rule per decision, nothing protected touched, `premature` only from
the last two pressure steps, a keep's `until_ms` in the future, a migrate going elsewhere.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from ccvault.config.policy import RetentionSettings
from ccvault.retention.planner import (
    DAY_MS,
    DELETE,
    KEEP,
    MIGRATE,
    PRESSURE_STEPS,
    THIN,
    WAIT,
    ArchiveRoom,
    Candidate,
    Decision,
    Policy,
    Protection,
    decide,
    in_floor,
    over_quota,
    plan,
    pressure_floors,
    protection_for,
    relieve,
    unless_locked,
)

GOLDEN = Path(__file__).parent / "golden" / "retention"
NOW = 1_782_864_000_000  # 2026-07-01T00:00:00Z
HOUR = 3_600_000
CAMERAS = ("front", "yard", "gate")
BASE_BYTES = {"front": 800_000_000, "yard": 500_000_000, "gate": 200_000_000}
SLOTS = 45 * 4  # one segment every 6 hours for 45 days


# --- the fixture catalog -------------------------------------------------------------------


def _segment(camera: str, k: int) -> Candidate:
    """The k-th segment back from NOW: an hour starting at 17:30, 11:30, 05:30 or 23:30 UTC,
    so its start is k×6 h + 30 min old and its end k×6 h − 30 min. Its id is camera×1000 + k."""
    start = NOW - k * 6 * HOUR - HOUR // 2
    slot = k % 4  # 1: 17:30, 2: 11:30 (midday), 3: 05:30, 0: 23:30
    activity = {
        "front": slot != 3,  # a street: busy but for the early morning
        "yard": slot == 2,  # midday only
        "gate": slot == 2 and k % 8 == 2,
    }[camera]  # midday, every other day
    # The last 12 hours are not analysed yet, nor is one gate day when the analyser was down.
    analysed = k > 2 and not (camera == "gate" and 69 <= k <= 72)
    thinned = camera == "yard" and slot == 0 and 25 <= k <= 40  # groomed nights, 6–10 days
    if k <= 28 or (k <= 120 and k % 10 == 3):  # a week, plus some left behind on hot
        volume = "hot"
    else:
        volume = "archive-a" if k <= 120 else "archive-b"
    size = BASE_BYTES[camera] + (k * 37 % 50) * 4_000_000
    size += BASE_BYTES[camera] // 2 if activity else 0
    size //= 3 if thinned else 1
    return Candidate(
        id=(CAMERAS.index(camera) + 1) * 1000 + k,
        camera=camera,
        volume=volume,
        start_ms=start,
        end_ms=start + HOUR,
        bytes=size,
        activity=activity,
        analysed=analysed,
        thinned=thinned,
        role="hot" if volume == "hot" else "archive",
    )


CATALOG = tuple(_segment(camera, k) for camera in CAMERAS for k in range(1, SLOTS + 1))


def _days(d: float) -> int:
    return round(d * DAY_MS)


PROTECTIONS = (
    # an incident at the front door, held until released
    Protection("hold", 1, frozenset({"front"}), NOW - _days(40), NOW - _days(38), None),
    # a day on every camera, held for ten more days
    Protection("hold", 2, None, NOW - _days(20), NOW - _days(19), NOW + _days(10)),
    # held for the yard, but the hold ran out yesterday
    Protection("hold", 3, frozenset({"yard"}), NOW - _days(35), NOW - _days(33), NOW - _days(1)),
    # an overlapping pair on the yard: a dated hold and an open-ended one
    Protection("hold", 4, frozenset({"yard"}), NOW - _days(30), NOW - _days(27), NOW + _days(20)),
    Protection("hold", 5, frozenset({"yard"}), NOW - _days(28), NOW - _days(26), None),
    # something at the gate the day before yesterday, held for a week
    Protection("hold", 6, frozenset({"gate"}), NOW - _days(2), NOW - _days(1), NOW + _days(7)),
    # an export from the gate, pinned five more days
    Protection(
        "export_pin", 7, frozenset({"gate"}), NOW - _days(25), NOW - _days(24), NOW + _days(5)
    ),
    # held for the gate until exactly now: no longer active
    Protection("hold", 8, frozenset({"gate"}), NOW - _days(35), NOW - _days(33), NOW),
    # the gate again, overlapping hold 2 and dated later
    Protection(
        "hold", 9, frozenset({"gate"}), NOW - _days(20.5), NOW - _days(19.5), NOW + _days(30)
    ),
)

ROOMY = {"archive-a": 10**12, "archive-b": 10**12}


def aged(lo: float, hi: float, *cameras: str, volume: str | None = None) -> list[Candidate]:
    """The catalog's segments whose end is lo ≤ age < hi days old (of these cameras, on
    this volume, when given)."""
    return [
        c
        for c in CATALOG
        if _days(lo) <= NOW - c.end_ms < _days(hi)
        and (not cameras or c.camera in cameras)
        and (volume is None or c.volume == volume)
    ]


def policies(**overrides: dict[str, Any]) -> dict[str, Policy]:
    """Every camera on the default policy but for the keys given per camera."""
    return {
        camera: Policy.from_settings(RetentionSettings(**overrides.get(camera, {})))
        for camera in CAMERAS
    }


def oldest_first(candidates: Iterable[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (c.start_ms, c.id))


# --- running a case ------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str  # plan | quota | pressure
    scope: list[Candidate]
    policies: dict[str, Policy]
    rooms: frozenset[str]  # the archive volumes a migrate may go to
    steps: list[tuple[int | None, Decision]]  # (pressure step or None, decision), as made
    left: int | None = None  # quota: excess left; pressure: need left
    asked: int | None = None  # quota: the excess; pressure: the need
    taken: frozenset[int] = frozenset()
    floors: dict[str, int] | None = None  # pressure: each camera's floor (ends after it stay)

    @property
    def decisions(self) -> list[Decision]:
        return [d for _, d in self.steps]


def planned(
    scope: list[Candidate], pol: dict[str, Policy] | None = None, room: dict[str, int] | None = None
) -> Outcome:
    pol = pol or policies()
    room = dict(ROOMY if room is None else room)
    decisions = plan(scope, pol, PROTECTIONS, NOW, ArchiveRoom(dict(room)))
    return Outcome("plan", scope, pol, frozenset(room), [(None, d) for d in decisions])


def quota(
    scope: list[Candidate], excess: int, pol: dict[str, Policy], taken: Iterable[int] = ()
) -> Outcome:
    decided = frozenset(taken)
    decisions, left = over_quota(
        oldest_first(scope), excess, "max_bytes:camera", pol, PROTECTIONS, NOW, set(decided)
    )
    return Outcome(
        "quota", scope, pol, frozenset(), [(None, d) for d in decisions], left, excess, decided
    )


def newest_ends(catalog: Iterable[Candidate] = CATALOG) -> dict[str, int]:
    """Each camera's newest footage end, as `queries.last_segment_ends` reads the catalog."""
    out: dict[str, int] = {}
    for c in catalog:
        out[c.camera] = max(out.get(c.camera, c.end_ms), c.end_ms)
    return out


def pressure(
    volume: str,
    need: int,
    room: dict[str, int],
    pol: dict[str, Policy] | None = None,
    scope: list[Candidate] | None = None,
    catalog: Iterable[Candidate] = CATALOG,
) -> Outcome:
    """PRESSURE_STEPS in order over a volume's segments (all, or one page of them), oldest
    first, as pressure.plan does: the migrate step is skipped when no other archive has room;
    each camera's floor is counted back from its newest footage in `catalog`."""
    pol = pol or policies()
    catalog = list(catalog)
    floors = pressure_floors(newest_ends(catalog), pol, NOW)
    everything = (c for c in catalog if c.volume == volume)
    scope = oldest_first(scope if scope is not None else everything)
    assert all(c.volume == volume for c in scope)
    archives, asked = ArchiveRoom(dict(room)), need
    taken: set[int] = set()
    steps: list[tuple[int | None, Decision]] = []
    for step in PRESSURE_STEPS:
        if need <= 0:
            break
        if step.action == MIGRATE and not any(
            free > 0 for name, free in archives.free.items() if name != volume
        ):
            continue
        decisions, need = relieve(
            step, scope, need, f"pressure:{volume}", pol, PROTECTIONS, NOW, archives, taken, floors
        )
        steps += [(step.number, d) for d in decisions]
    return Outcome("pressure", scope, pol, frozenset(room), steps, need, asked, floors=floors)


# --- the named cases -----------------------------------------------------------------------

CASES: dict[str, Callable[[], Outcome]] = {}


def case(fn: Callable[[], Outcome]) -> Callable[[], Outcome]:
    CASES[fn.__name__] = fn
    return fn


@case
def defaults_nothing_due_yet() -> Outcome:
    """The last three days under the default policy: all kept inside min_days, each until its
    next change (the move off hot at end + 7 days); the gate's held day until the hold ends."""
    return planned(aged(0, 3))


@case
def idle_past_continuous_days() -> Outcome:
    """The yard, 12–17 days old, defaults: idle footage goes once its end is 14 days old;
    midday activity stays, until the ceiling (start + 31 days)."""
    return planned(aged(12, 17, "yard"))


@case
def activity_kept_to_motion_days() -> Outcome:
    """The front, 19–24 days old, motion_days 22: activity goes once its end is 22 days old,
    idle footage is past continuous_days already; hold 2 (19–20 days) keeps what it covers."""
    return planned(aged(19, 24, "front"), policies(front={"motion_days": 22}))


@case
def unanalysed_treated_as_activity() -> Outcome:
    """The gate, 16–18 days old: the day never analysed (k 69–72) is kept like activity, to
    motion_days; the analysed idle footage around it is past continuous_days and goes."""
    return planned(aged(16, 18, "gate"))


@case
def ceiling_counts_from_start() -> Outcome:
    """The front around 31 days, defaults (motion_days = max_days = 31): the activity whose
    end is 31 days − 30 min old but whose start is 31 days + 30 min old goes by max_days,
    though its window (from the end) is not over; the activity before it is kept, until its
    start is 31 days old."""
    return planned(aged(30, 31.5, "front"))


@case
def hold_beats_max_days() -> Outcome:
    """The front, 37–41 days old: past the ceiling, but hold 1 (open-ended, 38–40 days)
    keeps what it covers, with no end date; the rest goes by max_days."""
    return planned(aged(37, 41, "front"))


@case
def hold_for_one_camera_only() -> Outcome:
    """Every camera, 38.5–39.5 days old: hold 1 names the front only; the yard and the gate
    at the same instants go by max_days."""
    return planned(aged(38.5, 39.5))


@case
def expired_hold_protects_nothing() -> Outcome:
    """Yard and gate, 32.5–35.5 days old: hold 3 ran out yesterday and hold 8 runs out
    exactly now, so both protect nothing and everything goes by max_days."""
    return planned(aged(32.5, 35.5, "yard", "gate"))


@case
def export_pin_keeps() -> Outcome:
    """The gate, 23–26 days old: the export pin (24–25 days, five more days) keeps what it
    covers until it ends; the idle footage around it goes by continuous_days."""
    return planned(aged(23, 26, "gate"))


@case
def open_ended_hold_wins_over_dated() -> Outcome:
    """The yard, 25–31 days old: where dated hold 4 (27–30 days) and open-ended hold 5
    (26–28 days) overlap, hold 5 decides (no end date); hold 4 alone keeps until its end."""
    return planned(aged(25, 31, "yard"))


@case
def later_dated_hold_wins_over_earlier() -> Outcome:
    """The gate, 18.5–21.5 days old: where hold 2 (all cameras, ten more days) and hold 9
    (the gate, thirty more days) overlap, hold 9 decides, its end being later."""
    return planned(aged(18.5, 21.5, "gate"))


@case
def thinning_after_days() -> Outcome:
    """The yard, 2–6 days old, thin_after_days 3: idle footage past 3 days is thinned, younger
    idle footage is kept until end + 3 days; activity and unanalysed footage is never thinned."""
    return planned(aged(2, 6, "yard"), policies(yard={"thin_after_days": 3}))


@case
def already_thinned_not_again() -> Outcome:
    """The yard, 6–10 days old, thin_after_days 3: the nights already thinned are kept (the
    hot ones until they move), the idle footage not thinned yet is thinned — before it moves."""
    return planned(aged(6, 10, "yard"), policies(yard={"thin_after_days": 3}))


@case
def hot_days_migrates_when_archive_has_room() -> Outcome:
    """Hot footage 6–14 days old, defaults: past 7 days it moves, oldest first, to archive-a
    while it has room (3 GB), then to archive-b; younger hot footage stays, until 7 days."""
    return planned(
        aged(6, 14, volume="hot"), room={"archive-a": 3_000_000_000, "archive-b": 50_000_000_000}
    )


@case
def hot_days_stays_when_archives_full() -> Outcome:
    """Hot footage 6–14 days old, defaults, and no archive with room for any of it: all of
    it stays on hot, kept (pressure frees space if it must)."""
    return planned(aged(6, 14, volume="hot"), room={"archive-a": 0, "archive-b": 100_000_000})


@case
def quota_deletes_oldest_past_min_days() -> Outcome:
    """The front's last 21 days over an 80 GB quota: the oldest go first, skipping the segments
    hold 2 covers and the oldest one (already decided this pass), until under the quota."""
    scope = aged(0, 21, "front")
    pol = policies(front={"max_bytes": 80_000_000_000})
    excess = sum(c.bytes for c in scope) - 80_000_000_000
    return quota(scope, excess, pol, taken=[oldest_first(scope)[0].id])


@case
def quota_yields_to_min_days() -> Outcome:
    """The front's last 10 days over a 5 GB quota: everything past min_days (7 days) goes, the
    younger footage stays although the camera is still over (the excess left is reported)."""
    scope = aged(0, 10, "front")
    pol = policies(front={"max_bytes": 5_000_000_000})
    return quota(scope, sum(c.bytes for c in scope) - 5_000_000_000, pol)


@case
def pressure_order_steps_1_to_6() -> Outcome:
    """The hot volume needs 36 GB, archive-a takes 2 GB, the yard thins after 3 days: step 1
    moves the oldest until the archive is full, 2 thins the yard's idle footage (counting
    half its bytes), 3 and 4 delete idle then activity past min_days, 5 and 6 (premature) idle
    then activity inside it, each oldest first, until enough is freed — a few segments into
    step 6; the gate's held days are never chosen, nor each camera's newest 24 h (the default
    pressure floor: the last day's idle hours are neither thinned nor deleted)."""
    return pressure(
        "hot", 36_000_000_000, {"archive-a": 2_000_000_000}, policies(yard={"thin_after_days": 3})
    )


@case
def pressure_never_touches_held() -> Outcome:
    """A page of archive-b (34–40 days old) when the volume needs more than the page holds
    and archive-a has 3 GB: every segment is moved or deleted — the expired holds 3 and 8
    protect nothing — except those hold 1 covers, though they are the oldest; need is left."""
    return pressure(
        "archive-b", 10**12, {"archive-a": 3_000_000_000}, scope=aged(34, 40, volume="archive-b")
    )


@case
def pressure_floor_keeps_each_cameras_newest_day() -> Outcome:
    """The hot volume needs far more than it holds (another program fills the disk) and no
    archive has room: every segment is deleted — premature, inside min_days too — except what
    holds keep and each camera's newest 24 hours (pressure_floor_hours, by default), counted
    back from its newest footage (ending 5.5 h ago): the segments ending 5.5, 11.5, 17.5 and
    23.5 h ago stay, the one ending 29.5 h ago goes; the need left is reported."""
    return pressure("hot", 10**12, {})


@case
def pressure_floor_counts_from_each_cameras_newest_footage() -> Outcome:
    """As above, but the gate stopped recording 3 days ago (its last 12 segments are not in
    the catalog): its floor counts back from its own newest footage, so the day before it
    went dark stays — the last pictures of a camera someone cut are kept, though older than
    24 h — while the front and the yard keep their last 24 h as before."""
    catalog = [c for c in CATALOG if not (c.camera == "gate" and c.id - 3000 <= 12)]
    return pressure("hot", 10**12, {}, catalog=catalog)


@case
def pressure_floor_per_camera_override() -> Outcome:
    """The same flood with the yard's floor off (0) and the gate's at 72 h: the yard loses
    even its newest footage, the gate keeps three days (all of it inside min_days), the front
    its default day."""
    pol = policies(yard={"pressure_floor_hours": 0}, gate={"pressure_floor_hours": 72})
    return pressure("hot", 10**12, {}, pol)


@case
def per_camera_override() -> Outcome:
    """Every camera 4–12 days old; the yard keeps idle 5, activity 10, all 15 days (min 2,
    hot 2) and the gate 3 / 6 / 8 days (min 1, hot 1): the same ages meet three fates."""
    return planned(
        aged(4, 12),
        policies(
            yard={
                "continuous_days": 5,
                "motion_days": 10,
                "max_days": 15,
                "min_days": 2,
                "hot_days": 2,
            },
            gate={
                "continuous_days": 3,
                "motion_days": 6,
                "max_days": 8,
                "min_days": 1,
                "hot_days": 1,
            },
        ),
    )


# --- goldens -------------------------------------------------------------------------------


def render(name: str, out: Outcome) -> str:
    summary: dict[str, int] = {}
    for step, d in out.steps:
        key = (
            (f"step {step}: " if step else "")
            + f"{d.action} {d.rule}"
            + (" (premature)" if d.premature else "")
        )
        summary[key] = summary.get(key, 0) + 1
    doc: dict[str, Any] = {
        "case": name,
        "about": " ".join((CASES[name].__doc__ or "").split()),
        "now_ms": NOW,
        "in_scope": len(out.scope),
        "summary": dict(sorted(summary.items())),
    }
    if out.kind != "plan":
        what = "excess" if out.kind == "quota" else "need"
        doc[what] = out.asked
        doc[f"{what}_left"] = out.left
    decisions = sorted(
        out.decisions, key=lambda d: (d.segment.camera, d.segment.start_ms, d.segment.id)
    )
    doc["decisions"] = [d.as_json() for d in decisions]
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, update_goldens: bool) -> None:
    path = GOLDEN / f"{name}.json"
    text = render(name, CASES[name]())
    if update_goldens:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} missing: run `pytest --update-goldens` and review the diff"
    stored = path.read_text(encoding="utf-8")
    if text != stored:
        diff = "".join(
            difflib.unified_diff(
                stored.splitlines(True),
                text.splitlines(True),
                f"{path.name} (stored)",
                f"{path.name} (now)",
            )
        )
        pytest.fail(
            f"{name} differs from its golden (`pytest --update-goldens` rewrites it "
            f"— review the diff):\n{diff[:6000]}",
            pytrace=False,
        )


def test_every_golden_has_a_case() -> None:
    stored = {p.stem for p in GOLDEN.glob("*.json")}
    assert stored <= set(CASES), f"goldens without a case: {sorted(stored - set(CASES))}"


# --- invariants, whatever the case ---------------------------------------------------------


def _active_cover(c: Candidate) -> list[Protection]:
    return [p for p in PROTECTIONS if p.active(NOW) and p.covers(c)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_invariants(name: str) -> None:
    out = CASES[name]()
    scope_ids = {c.id for c in out.scope}
    ids = [d.segment.id for d in out.decisions]
    assert len(ids) == len(set(ids)), "a segment decided twice"
    assert set(ids) <= scope_ids, "a decision about a segment out of scope"
    if out.kind == "plan":  # conservation: keep + the others = the input
        kept = sum(d.action == KEEP for d in out.decisions)
        assert kept + sum(d.action != KEEP for d in out.decisions) == len(out.scope)
        assert set(ids) == scope_ids
    for step, d in out.steps:
        c, pol = d.segment, out.policies[d.segment.camera]
        assert d.action in (KEEP, DELETE, THIN, MIGRATE)
        assert isinstance(d.rule, str) and d.rule, f"{c.id}: no rule"
        if d.action != KEEP:
            assert not _active_cover(c), f"{c.id}: {d.action} of protected footage"
        if d.premature:
            assert d.action == DELETE and step in (5, 6), f"{c.id}: premature outside 5/6"
        if d.action == MIGRATE:
            assert d.target is not None and d.target != c.volume and d.target in out.rooms
        else:
            assert d.target is None
        if d.action == THIN:
            assert c.idle and not c.thinned, f"{c.id}: thinning activity or thinned footage"
        if d.action == DELETE and step not in (5, 6):  # the min_days promise
            assert c.end_ms <= NOW - pol.min_ms, f"{c.id}: deleted inside min_days"
    if out.kind == "quota":
        _quota_invariants(out)
    if out.kind == "pressure":
        _pressure_invariants(out)


def _quota_invariants(out: Outcome) -> None:
    assert all(d.action == DELETE and d.rule == "max_bytes:camera" for d in out.decisions)
    assert out.asked is not None and out.left is not None
    assert out.left == out.asked - sum(d.segment.bytes for d in out.decisions)
    assert not {d.segment.id for d in out.decisions} & out.taken
    eligible = [
        c
        for c in oldest_first(out.scope)
        if c.id not in out.taken
        and not _active_cover(c)
        and c.end_ms <= NOW - out.policies[c.camera].min_ms
    ]
    deleted = [d.segment for d in out.decisions]
    assert deleted == eligible[: len(deleted)], "not the oldest eligible first"
    assert out.left <= 0 or deleted == eligible, "stopped while over quota with more to take"


def _pressure_invariants(out: Outcome) -> None:
    assert out.asked is not None and out.left is not None
    freed = sum(
        d.segment.bytes if d.action != THIN else int(d.segment.bytes * 0.5) for d in out.decisions
    )
    assert out.left == out.asked - freed
    numbers = [step for step, _ in out.steps]
    assert numbers == sorted(numbers), "pressure steps out of order"
    for number in set(numbers):  # oldest first within a step
        starts = [d.segment.start_ms for step, d in out.steps if step == number]
        assert starts == sorted(starts)
    for step, d in out.steps:
        assert d.action == PRESSURE_STEPS[step - 1].action
        assert d.premature == (step in (5, 6))
        if d.action in (DELETE, THIN):  # the floor: each camera's newest footage stays
            assert out.floors is not None and not in_floor(d.segment, out.floors), d.segment.id


@pytest.mark.parametrize("name", sorted(CASES))
def test_keep_until_is_ahead_or_an_open_ended_protection(name: str) -> None:
    for d in CASES[name]().decisions:
        if d.action != KEEP:
            continue
        if d.until_ms is None:
            held = protection_for(d.segment, PROTECTIONS, NOW)
            assert held is not None and held.until_ms is None and d.rule == held.rule, (
                f"{d.segment.id}: kept with no end, not by an open-ended protection"
            )
        else:
            assert d.until_ms > NOW, f"{d.segment.id}: kept 'until' {d.until_ms} ≤ now"


# --- decide() alone ------------------------------------------------------------------------

TABLE_POLICY = Policy.from_settings(
    RetentionSettings(
        continuous_days=14, motion_days=21, max_days=31, min_days=7, hot_days=7, thin_after_days=3
    )
)


@pytest.mark.parametrize(
    ("age_days", "activity", "analysed", "thinned", "role", "expected"),
    [
        pytest.param(1, False, True, False, "hot", (KEEP, "min_days"), id="idle_young_kept"),
        pytest.param(
            4,
            False,
            True,
            False,
            "hot",
            (THIN, "thin_after_days"),
            id="idle_past_thin_after_thinned",
        ),
        pytest.param(4, False, True, True, "hot", (KEEP, "min_days"), id="thinned_young_kept"),
        pytest.param(4, True, True, False, "hot", (KEEP, "min_days"), id="activity_never_thinned"),
        pytest.param(
            8,
            False,
            True,
            False,
            "hot",
            (THIN, "thin_after_days"),
            id="thinning_comes_before_the_move",
        ),
        pytest.param(
            8, False, True, True, "hot", (MIGRATE, "hot_days"), id="thinned_hot_past_hot_days_moves"
        ),
        pytest.param(
            8,
            True,
            True,
            False,
            "hot",
            (MIGRATE, "hot_days"),
            id="activity_hot_past_hot_days_moves",
        ),
        pytest.param(
            8, True, True, False, "archive", (KEEP, "window"), id="archived_activity_kept_by_window"
        ),
        pytest.param(
            15,
            False,
            True,
            True,
            "archive",
            (DELETE, "continuous_days"),
            id="idle_past_continuous_days",
        ),
        pytest.param(
            15, False, False, False, "archive", (KEEP, "window"), id="unanalysed_kept_like_activity"
        ),
        pytest.param(
            22,
            True,
            True,
            False,
            "archive",
            (DELETE, "motion_days"),
            id="activity_past_motion_days",
        ),
        pytest.param(
            22,
            False,
            False,
            False,
            "archive",
            (DELETE, "motion_days"),
            id="unanalysed_past_motion_days",
        ),
        pytest.param(
            31 - 1 / 48,
            True,
            True,
            False,
            "archive",
            (DELETE, "max_days"),
            id="start_past_ceiling_end_not",
        ),
    ],
)
def test_decide(
    age_days: float,
    activity: bool,
    analysed: bool,
    thinned: bool,
    role: str,
    expected: tuple[str, str],
) -> None:
    """A one-hour segment whose end is age_days old, under continuous 14, motion 21, max 31,
    min 7, hot 7, thin after 3 days, with room on the archive."""
    end = NOW - _days(age_days)
    c = Candidate(
        1,
        "front",
        "hot" if role == "hot" else "archive-a",
        end - HOUR,
        end,
        500_000_000,
        activity,
        analysed,
        thinned,
        role,
    )
    d = decide(c, TABLE_POLICY, (), NOW, ArchiveRoom({"archive-a": 10**12, "archive-b": 10**12}))
    assert (d.action, d.rule) == expected
    assert d.target == ("archive-a" if d.action == MIGRATE else None)


# --- S3 Object Lock: a deletion the lock forbids is a wait, named --------------------------


def _archived(
    age_days: float, lock_days: float | None, legal_hold: bool = False, seg_id: int = 1
) -> Candidate:
    """A one-hour idle segment on a locking bucket whose end is age_days old, its object
    retained until lock_days from now (negative: the lock has run out; None: no lock)."""
    end = NOW - _days(age_days)
    return Candidate(
        seg_id, "front", "vault", end - HOUR, end, 400_000_000, False, True, False, "archive",
        None if lock_days is None else NOW + _days(lock_days),
        None if lock_days is None else "compliance",
        legal_hold,
        False,  # an object in the bucket: no file here
    )  # fmt: skip


def test_a_deletion_its_object_lock_forbids_waits_until_the_lock_ends() -> None:
    c = _archived(40, 5)  # past max_days (31), locked five more days
    d = decide(c, TABLE_POLICY, (), NOW, ArchiveRoom())
    assert (d.action, d.rule, d.until_ms, d.waits_for) == (
        WAIT,
        "max_days",
        c.lock_until_ms,
        "object_lock",
    )
    assert d.as_json()["action"] == "wait" and d.as_json()["waits_for"] == "object_lock"
    assert d.as_json()["lock_mode"] == "compliance" and d.as_json()["until_ms"] == NOW + _days(5)
    # At the lock's date (or after) the same rule deletes it.
    later = decide(c, TABLE_POLICY, (), NOW + _days(5), ArchiveRoom())
    assert (later.action, later.rule, later.waits_for) == (DELETE, "max_days", None)
    assert decide(_archived(40, -1), TABLE_POLICY, (), NOW, ArchiveRoom()).action == DELETE
    assert decide(_archived(40, None), TABLE_POLICY, (), NOW, ArchiveRoom()).action == DELETE


def test_an_archived_object_is_never_proposed_for_thinning_a_file_here_is() -> None:
    """Thinning cuts a keyframes-only copy from the file: an object in a bucket is not
    proposed (the executor could only skip it, and a dry run would show a thinning that never
    happens), neither by the routine rule nor by pressure's step 2."""
    pol = Policy.from_settings(RetentionSettings(thin_after_days=3))
    on_bucket = _archived(10, None)  # idle, past thin_after_days, short of continuous_days
    assert decide(on_bucket, pol, (), NOW, ArchiveRoom()).action == KEEP
    assert not PRESSURE_STEPS[1].applies(on_bucket, pol, NOW)
    in_a_file = replace(on_bucket, files_here=True)
    assert decide(in_a_file, pol, (), NOW, ArchiveRoom()).action == THIN
    assert PRESSURE_STEPS[1].applies(in_a_file, pol, NOW)


def test_a_legal_hold_still_on_the_object_waits_with_no_date() -> None:
    # A hold released in the catalog whose legal hold release the store has not taken yet.
    d = decide(_archived(40, -1, legal_hold=True), TABLE_POLICY, (), NOW, ArchiveRoom())
    assert (d.action, d.rule, d.until_ms, d.waits_for) == (WAIT, "max_days", None, "legal_hold")
    assert d.as_json()["waits_for"] == "legal_hold"


def test_a_locked_object_the_policy_keeps_is_kept_by_the_policy() -> None:
    # Not due for deletion: the lock changes nothing (the rule that keeps it is named).
    d = decide(_archived(2, 5), TABLE_POLICY, (), NOW, ArchiveRoom())
    assert (d.action, d.rule, d.waits_for) == (KEEP, "min_days", None)
    held = Protection("hold", 4, None, NOW - _days(50), NOW, None)
    d = decide(_archived(40, 5), TABLE_POLICY, (held,), NOW, ArchiveRoom())
    assert (d.action, d.rule) == (KEEP, "hold:4")
    # Only deletions wait: any other decision passes through.
    moved = Decision(_archived(40, 5), MIGRATE, "hot_days", target="archive-a")
    assert unless_locked(moved, NOW) is moved


def test_a_quota_waits_for_locked_objects_and_takes_the_next_unlocked() -> None:
    pol = {"front": TABLE_POLICY}
    locked, free = _archived(40, 5, seg_id=1), _archived(39, None, seg_id=2)
    decisions, left = over_quota(
        [locked, free], 500_000_000, "max_bytes:camera", pol, (), NOW, set()
    )
    assert [(d.segment.id, d.action) for d in decisions] == [(1, WAIT), (2, DELETE)]
    assert left == 500_000_000 - free.bytes  # the wait freed nothing


def test_pressure_counts_nothing_freed_by_a_locked_object() -> None:
    pol = {"front": TABLE_POLICY}
    locked, free = _archived(40, 5, seg_id=1), _archived(39, None, seg_id=2)
    step = PRESSURE_STEPS[2]  # idle footage past min_days
    decisions, need = relieve(
        step, [locked, free], 500_000_000, "pressure:vault", pol, (), NOW, ArchiveRoom(), set(),
        {"front": NOW},
    )  # fmt: skip
    assert [(d.segment.id, d.action) for d in decisions] == [(1, WAIT), (2, DELETE)]
    assert need == 500_000_000 - free.bytes
