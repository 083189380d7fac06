"""The server room's rules: pure cases first (each named after the situation), then the real
daemon — a contractor alone fires two_person_rule after the grace and staff entering resolves
it; motion on the room's camera with nobody inside fires presence_without_entry; each firing
holds the room's footage.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccvault.access.rules import MotionSeen, RoomState, evaluate, next_deadline
from ccvault.catalog.rows import StoredVisit, Visit
from ccvault.config.access import AccessConfig, RoomConfig
from tests.conftest import cli_json, run_cli, wait_for, write_config
from tests.peers import WebhookReceiver

ROOM = RoomConfig(name="sr", cameras=["cam"], grace_seconds=30, entry_window_seconds=60)
CONFIG = AccessConfig(rooms=[ROOM], denied_count=3, denied_minutes=5)
MIN = 60_000


def inside(*people: tuple[str, str, int]) -> tuple[StoredVisit, ...]:
    return tuple(
        StoredVisit(i + 1, "sr", Visit(100 + i, person, role, entered, None))
        for i, (person, role, entered) in enumerate(people)
    )


def motion(
    start: int,
    inside_at_start: int = 0,
    entry: int | None = None,
    people: int | None = None,
    people_ms: int = 0,
) -> MotionSeen:
    return MotionSeen(7, "cam", start, start + MIN, inside_at_start, entry, people, people_ms)


CASES = {
    "contractor_alone_past_grace": (
        RoomState(ROOM, inside(("c-17", "contractor", 0)), None),
        31_000,
        ["two_person_rule"],
    ),
    "contractor_alone_within_grace": (
        RoomState(ROOM, inside(("c-17", "contractor", 0)), None),
        29_000,
        [],
    ),
    "contractor_with_staff": (
        RoomState(ROOM, inside(("alice", "staff", 0), ("c-17", "contractor", 0)), None),
        10 * MIN,
        [],
    ),
    "staff_left_the_contractor_behind": (
        RoomState(ROOM, inside(("c-17", "contractor", 0)), 5 * MIN),
        5 * MIN + 31_000,
        ["two_person_rule"],
    ),
    "staff_just_left": (
        RoomState(ROOM, inside(("c-17", "contractor", 0)), 5 * MIN),
        5 * MIN + 10_000,
        [],
    ),
    "visitor_of_no_listed_role_is_not_escorted": (
        RoomState(ROOM, inside(("x", None, 0)), None),
        10 * MIN,
        [],
    ),  # type: ignore[arg-type]
    "motion_in_an_empty_room": (
        RoomState(ROOM, (), None, (motion(MIN),)),
        2 * MIN,
        ["presence_without_entry"],
    ),
    "motion_right_after_an_entry": (
        RoomState(ROOM, (), None, (motion(MIN, entry=MIN - 20_000),)),
        2 * MIN,
        [],
    ),
    "motion_long_after_an_entry_the_log_says_left": (
        RoomState(ROOM, (), None, (motion(10 * MIN, entry=MIN),)),
        11 * MIN,
        ["presence_without_entry"],
    ),
    "motion_with_someone_inside": (
        RoomState(ROOM, inside(("alice", "staff", 0)), None, (motion(MIN, 1),)),
        2 * MIN,
        [],
    ),
    "more_people_on_video_than_inside_for_long": (
        RoomState(
            ROOM,
            inside(("alice", "staff", 0)),
            None,
            (motion(MIN, 1, 0, people=2, people_ms=40_000),),
        ),
        2 * MIN,
        ["more_people_than_entries"],
    ),
    "more_people_on_video_but_only_briefly": (
        RoomState(
            ROOM,
            inside(("alice", "staff", 0)),
            None,
            (motion(MIN, 1, 0, people=2, people_ms=4_000),),
        ),
        2 * MIN,
        [],
    ),
    "denied_three_times_in_five_minutes": (
        RoomState(ROOM, (), None, (), {"SR-1": (MIN, 2 * MIN, 4 * MIN)}),
        5 * MIN,
        ["access_denied_repeatedly"],
    ),
    "denied_three_times_but_spread_out": (
        RoomState(ROOM, (), None, (), {"SR-1": (MIN, 2 * MIN, 9 * MIN)}),
        9 * MIN,
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_cases(case: str) -> None:
    state, now, expected = CASES[case]
    found = evaluate([state], CONFIG, now)
    assert [f.rule for f in found] == expected, [f.summary for f in found]
    for finding in found:
        assert finding.labels["room"] == "sr" and finding.summary and finding.since_ms <= now


def test_the_next_check_is_when_the_grace_runs_out() -> None:
    state = RoomState(ROOM, inside(("c-17", "contractor", 1000)), None)
    assert next_deadline([state], 5000) == 31_000
    assert next_deadline([state], 40_000) is None  # already due: the check finds it


ACCESS = """
[access]
padding_seconds = 20

[[access.rooms]]
name = "server-room"
cameras = ["room-cam"]
grace_seconds = {grace}
entry_window_seconds = 5

[[access.doors]]
name = "SR-1"
room = "server-room"

[[access.people]]
id = "alice"
role = "staff"

[[access.people]]
id = "c-17"
role = "contractor"

[alerts.webhook]
url = "{webhook}"
"""


@pytest.fixture
def room(tmp_path: Path, daemon_factory: Any) -> Any:
    hook = WebhookReceiver()
    # The demo camera: a person-sized block walks across every 8 s (real motion).
    config = write_config(
        tmp_path, [{"name": "room-cam", "url": "demo://?period=8"}], segment_seconds=2
    )
    config.write_text(config.read_text() + ACCESS.format(grace=6, webhook=hook.url))
    acs = run_cli(config, "user", "add", "acs", "--role", "integration").stdout.strip()
    daemon = daemon_factory(config)
    url = daemon.wait_event("http.listening", timeout=10)["url"]

    def door(eid: str, person: str, direction: str) -> float:
        sent = time.time()
        answer = httpx.post(
            f"{url}/api/access-events",
            headers={"Authorization": f"Bearer {acs}"},
            json={
                "events": [
                    {
                        "id": eid,
                        "time": "now",
                        "door": "SR-1",
                        "person": person,
                        "direction": direction,
                        "result": "granted",
                    }
                ]
            },
            timeout=30,
        )
        assert answer.json()["accepted"] == 1, answer.text
        return sent

    yield config, daemon, hook, door
    hook.close()


def test_a_contractor_alone_fires_two_person_rule_until_staff_comes(room: Any) -> None:
    config, _daemon, hook, door = room
    entered = door("e1", "c-17", "in")
    fired = wait_for(
        lambda: hook.alerts("two_person_rule", "firing"), 60, what="two_person_rule firing"
    )
    alert = fired[0][1]
    assert alert["labels"]["room"] == "server-room"
    assert "c-17" in alert["annotations"]["summary"]
    started = cli_json(config, "alerts")["active"]
    row = next(a for a in started if a["name"] == "two_person_rule")
    started_s = datetime.fromisoformat(row["started"].replace("Z", "+00:00")).timestamp()
    assert 6 - 1 <= started_s - entered <= 6 + 5  # after the grace (6 s), within 5 s of it
    door("e2", "alice", "in")
    wait_for(lambda: hook.alerts("two_person_rule", "resolved"), 30, what="resolved")
    holds = cli_json(config, "hold", "list")
    reasons = [h["reason"] for h in holds if h["cameras"] == ["room-cam"]]
    assert any(r.startswith("two_person_rule in room server-room") for r in reasons), holds
    assert any("(resolved)" in r for r in reasons)


def test_motion_with_nobody_inside_fires_presence_without_entry(room: Any) -> None:
    config, _daemon, hook, _door = room
    wait_for(
        lambda: hook.alerts("presence_without_entry", "firing"),
        90,
        what="presence_without_entry from the camera's motion",
    )
    alert = hook.alerts("presence_without_entry", "firing")[0][1]
    assert alert["labels"]["camera"] == "room-cam" and alert["labels"]["room"] == "server-room"
    holds = cli_json(config, "hold", "list")
    assert any(h["reason"].startswith("presence_without_entry") for h in holds)
