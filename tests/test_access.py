"""Access events in over HTTP, and what they make: visits, occupancy — against the real daemon.

An access system posts batches with the integration role; each event is judged on its own (the
bad one is named by index, the rest land), stored once by its id, and turned into visits and
occupancy that the CLI and the API show, every read audited.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccvault.catalog import db
from tests.conftest import cli_json, pg_catalog, run_cli, write_config

ACCESS = """
[access]
padding_seconds = 30

[[access.rooms]]
name = "server-room"
cameras = ["door-cam"]
grace_seconds = 5

[[access.doors]]
name = "SR-1"
room = "server-room"

[[access.people]]
id = "alice"
name = "Alice Staff"
role = "staff"

[[access.people]]
id = "c-17"
role = "contractor"
"""


def access_config(root: Path, catalog: db.Target | None = None) -> Path:
    config = write_config(
        root, [{"name": "door-cam", "url": "demo://", "enabled": False}], catalog=catalog
    )
    config.write_text(config.read_text() + ACCESS)
    return config


def token(config: Path, name: str, role: str) -> str:
    added = run_cli(config, "user", "add", name, "--role", role)
    assert added.returncode == 0, added.stderr
    return added.stdout.strip()


def event(
    eid: str,
    at: str,
    person: str,
    direction: str,
    result: str = "granted",
    door: str = "SR-1",
    **more: Any,
) -> dict[str, Any]:
    return {
        "id": eid,
        "time": at,
        "door": door,
        "person": person,
        "direction": direction,
        "result": result,
        **more,
    }


@pytest.fixture
def site_catalog(request: pytest.FixtureRequest, tmp_path: Path) -> db.Target | None:
    """The site's catalog: SQLite, unless a test asks for "postgresql" (indirect parameter)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    server = request.getfixturevalue("postgres_server")
    return pg_catalog(server, request.getfixturevalue("pg_database"), tmp_path)


@pytest.fixture
def site(tmp_path: Path, daemon_factory: Any, site_catalog: db.Target | None) -> Any:
    config = access_config(tmp_path, site_catalog)
    acs, viewer = token(config, "acs", "integration"), token(config, "guard", "viewer")
    daemon = daemon_factory(config)
    url = daemon.wait_event("http.listening", timeout=10)["url"]

    class Site:
        def post(self, events: list[Any], as_token: str = acs) -> httpx.Response:
            return httpx.post(
                f"{url}/api/access-events",
                json={"events": events},
                headers={"Authorization": f"Bearer {as_token}"},
                timeout=30,
            )

        def get(self, path: str, as_token: str = viewer, **query: str) -> httpx.Response:
            return httpx.get(
                f"{url}{path}",
                params=query,
                headers={"Authorization": f"Bearer {as_token}"},
                timeout=30,
            )

    site = Site()
    site.config, site.viewer, site.acs = config, viewer, acs  # type: ignore[attr-defined]
    return site


def test_a_batch_lands_except_the_bad_events_which_are_named(site: Any) -> None:
    batch = [
        event("e1", "-10m", "alice", "in"),
        event("e2", "-9m", "c-17", "in"),
        event("e3", "-8m", "c-17", "sideways"),  # unknown direction
        event("e4", "-7m", "bob", "in", door="BACK-DOOR"),  # unknown door
        event("e5", "+2d", "alice", "out"),  # far future
        event("e6", "not a time", "alice", "out"),  # unparsable
        {"id": "e7", "door": "SR-1"},  # missing fields
        "just a string",
        event("e9", "-5m", "alice", "out", result="denied"),
    ]
    answer = site.post(batch)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == 3 and body["duplicates"] == 0
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7]
    assert "direction" in reasons[2] and "BACK-DOOR" in reasons[3]
    assert "future" in reasons[4] and reasons[5].startswith("time:")
    again = site.post(batch[:2]).json()
    assert again == {"accepted": 0, "duplicates": 2, "rejected": []}
    metrics = site.get("/metrics").text
    for outcome, n in (("accepted", 3), ("duplicate", 2), ("rejected", 6)):
        line = f'ccvault_access_events_total{{outcome="{outcome}",source="http"}} {n}.0'
        assert line in metrics, (outcome, [m for m in metrics.splitlines() if "access" in m])
    listed = cli_json(site.config, "access-events", "--from", "-1h", "--to", "now")
    assert [(e["id"], e["person"], e["room"], e["role"]) for e in listed] == [
        ("e1", "alice", "server-room", "staff"),
        ("e2", "c-17", "server-room", "contractor"),
        ("e9", "alice", "server-room", "staff"),
    ]


@pytest.mark.parametrize("site_catalog", ["sqlite", "postgresql"], indirect=True)
def test_visits_and_occupancy_follow_the_door_and_flag_what_does_not_add_up(site: Any) -> None:
    site.post(
        [
            event("a1", "-30m", "alice", "in"),
            event("c1", "-29m", "c-17", "in", role="contractor"),
            event("c2", "-25m", "c-17", "in"),  # in while inside: kept, flagged
            event("a2", "-20m", "alice", "out"),
            event("x1", "-15m", "mallory", "out", role="visitor"),  # out with no in
        ]
    )
    occupancy = cli_json(site.config, "occupancy")
    assert [(r["room"], [v["person"] for v in r["inside"]]) for r in occupancy] == [
        ("server-room", ["c-17"])
    ]
    visits = cli_json(site.config, "visits", "--from", "-1h", "--to", "now")
    by_person = {v["person"]: v for v in visits}
    assert by_person["alice"]["left"] is not None and by_person["alice"]["name"] == "Alice Staff"
    assert by_person["c-17"]["left"] is None and by_person["c-17"]["flags"] == ["entered_twice"]
    assert by_person["c-17"]["escorted_by"] == ["alice"]
    assert by_person["mallory"]["entered"] is None and by_person["mallory"]["flags"] == ["no_entry"]
    api = site.get("/api/visits", **{"from": "-1h", "to": "now", "person": "c-17"})
    assert [v["id"] for v in api.json()] == [by_person["c-17"]["id"]]
    late = site.post([event("c0", "-40m", "c-17", "out")])  # arrives late, happened earlier
    assert late.json()["accepted"] == 1
    visits = cli_json(
        site.config, "visits", "--room", "server-room", "--from", "-1h", "--to", "now"
    )
    assert {v["id"] for v in visits} >= {by_person["c-17"]["id"], by_person["alice"]["id"]}
    assert len(visits) == 4  # the late exit is a visit with no entry of its own


def test_only_the_integration_role_posts_and_it_reads_nothing(site: Any) -> None:
    assert site.post([event("z1", "-1m", "alice", "in")], as_token=site.viewer).status_code == 403
    admin = token(site.config, "boss", "admin")
    assert site.post([event("z2", "-1m", "alice", "in")], as_token=admin).status_code == 403
    for path in ("/api/occupancy", "/api/cameras", "/api/visits"):
        assert (
            site.get(path, as_token=site.acs, **{"from": "-1h", "to": "now"}).status_code == 403
        ), path
    too_many = site.post([event(f"n{i}", "-1m", "alice", "in") for i in range(1001)])
    assert too_many.status_code == 422


def test_a_full_batch_fits_for_a_known_caller_only(site: Any) -> None:
    """1,000 events (the most a request takes) are over the usual 64 KiB body limit: the
    route's larger limit is for a caller with a valid token; a stranger's is refused unread."""
    batch = [event(f"full{i}", "-2h", "alice", "in" if i % 2 else "out") for i in range(1000)]
    assert len(json.dumps({"events": batch})) > 64 * 1024
    landed = site.post(batch)
    assert landed.status_code == 200, landed.text
    assert landed.json()["accepted"] + landed.json()["duplicates"] == 1000
    stranger = site.post(batch, as_token="ccv_" + "x" * 43)
    assert stranger.status_code == 413 and stranger.json()["error"]["field"] == "body"


def test_every_read_of_access_data_is_audited(site: Any) -> None:
    site.post([event("r1", "-5m", "alice", "in")])
    run_cli(site.config, "occupancy")
    site.get("/api/access-events", **{"from": "-1h", "to": "now"})
    site.get("/api/visits", **{"from": "-1h", "to": "now"})
    log = Path(site.config).parent / "audit.jsonl"
    actions = [json.loads(line)["action"] for line in log.read_text().splitlines()]
    assert {"access.occupancy", "access.events", "access.visits"} <= set(actions)
    readers = {
        json.loads(line)["actor"]
        for line in log.read_text().splitlines()
        if json.loads(line)["action"].startswith("access.")
    }
    assert any(r.startswith("cli:") for r in readers) and "api:guard" in readers
