"""Evidence of a visit (issue 15): `ccvault export --visit ID` and POST /api/exports {"visit"}
put every camera of the visit's room over the padded visit into one signed bundle whose
manifest holds the visit and the room's door events; `verify-export` checks and shows them,
and an edited event fails it. Real segments, real ffmpeg, the real CLI and HTTP API."""

from __future__ import annotations

import base64
import io
import json
import shutil
import sqlite3
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccvault.access.log import AccessLog
from ccvault.catalog.audit import AuditLog, audit_log
from ccvault.catalog.rows import Flag, StoredVisit, Visit
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.evidence.jobs import ExportJobs
from ccvault.evidence.visit import window
from ccvault.host.clock import SystemClock
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.storage.volumes import open_volumes
from ccvault.timefmt import utc_text
from tests.api_peer import serve
from tests.conftest import cli_json, run_cli, wait_for, write_config
from tests.retention_seed import seed
from tests.security.test_sec_evidence_bundles import FORGER_RAW, forge, readme_commands, run

SEGMENT_MS = 4000
ROOM_CAMERAS = ["door-cam", "hall-cam", "rack-cam"]  # rack-cam recorded nothing then

ACCESS = """
[export]
max_hours = 1

[access]
padding_seconds = 5

[[access.rooms]]
name = "server-room"
cameras = ["door-cam", "hall-cam", "rack-cam"]

[[access.rooms]]
name = "lobby"
cameras = ["lobby-cam"]

[[access.doors]]
name = "SR-1"
room = "server-room"

[[access.doors]]
name = "L-1"
room = "lobby"

[[access.people]]
id = "c-17"
role = "contractor"
"""


@dataclass
class Site:
    root: Path
    config: Path
    base_ms: int  # start of 8 contiguous 4 s segments on each of the three cameras
    visit_id: int  # c-17 in server-room from base + 10 s to base + 20 s

    def audit(self, action: str) -> list[dict[str, Any]]:
        return [r for r in AuditLog(self.root / "audit.jsonl").records() if r["action"] == action]

    def catalog(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.root / "catalog.sqlite")
        conn.row_factory = sqlite3.Row
        return conn

    def jobs(self) -> tuple[ExportJobs, CatalogWriter]:
        config = load(self.config).config
        writer = CatalogWriter(config.catalog_target, audit_log(config))
        clock = SystemClock()
        volumes = open_volumes(config, writer, clock.wall_ms())
        return ExportJobs(config, writer, lambda: volumes, clock, ffmpeg_binary(config)), writer


def door_event(eid: str, at_ms: int, person: str, direction: str, **more: Any) -> dict[str, Any]:
    return {
        "id": eid,
        "time": at_ms,
        "door": "SR-1",
        "person": person,
        "direction": direction,
        "result": "granted",
        **more,
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("visit-export")
    config = write_config(
        root,
        [
            {"name": name, "url": "demo://", "enabled": False}
            for name in (*ROOM_CAMERAS, "lobby-cam")
        ],
        volumes=[
            {
                "name": "hot",
                "path": str(root / "hot"),
                "role": "hot",
                "reserve_free_bytes": 0,
                "reserve_free_percent": 0,
            }
        ],
    )
    config.write_text(config.read_text() + ACCESS)
    base = int(time.time() * 1000) - 2 * 3_600_000
    seed(
        config,
        [
            {"camera": camera, "start_ms": base + i * SEGMENT_MS, "seconds": 4}
            for camera in ("door-cam", "hall-cam", "lobby-cam")
            for i in range(8)
        ],
        root / "cache",
    )
    loaded = load(config).config
    writer = CatalogWriter(loaded.catalog_target, audit_log(loaded))
    recorded = AccessLog(loaded, writer, SystemClock()).record(
        [
            door_event("before", base + 2000, "alice", "in"),  # outside the padded window
            door_event("in-1", base + 10_000, "c-17", "in"),
            door_event("denied-1", base + 15_000, "bob", "in", result="denied"),
            door_event("lobby-1", base + 12_000, "dave", "in", door="L-1"),  # another room
            door_event("out-1", base + 20_000, "c-17", "out"),
        ],
        "test",
    )
    assert recorded.accepted == 5, recorded
    writer.close()
    visits = cli_json(
        config, "visits", "--room", "server-room", "--from", utc_text(base), "--to", "now"
    )
    (visit,) = [v for v in visits if v["person"] == "c-17"]
    return Site(root, config, base, visit["id"])


@pytest.fixture(scope="module")
def bundle(site: Site) -> tuple[Path, dict[str, Any]]:
    result = run_cli(
        site.config,
        "export",
        "--visit",
        str(site.visit_id),
        "--reason",
        "contractor visit, ticket 9",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    return Path(summary["dir"]), summary


def verify(site: Site, path: Path, *extra: str) -> Any:
    return run_cli(site.config, "verify-export", str(path), *extra)


def test_a_visit_exports_its_rooms_cameras_and_door_events_in_one_signed_bundle(
    site: Site, bundle: tuple[Path, dict[str, Any]]
) -> None:
    out, summary = bundle
    manifest = json.loads((out / "manifest.json").read_bytes())
    assert manifest["format"] == "ccvault-evidence/3"
    assert summary["visit"] == site.visit_id and summary["cameras"] == ROOM_CAMERAS
    visit = manifest["visit"]
    assert {k: visit[k] for k in ("id", "room", "person", "role", "doors", "flags")} == {
        "id": site.visit_id,
        "room": "server-room",
        "person": "c-17",
        "role": "contractor",
        "doors": ["SR-1"],
        "flags": [],
    }
    assert visit["entered"] == utc_text(site.base_ms + 10_000)
    assert visit["left"] == utc_text(site.base_ms + 20_000)
    assert visit["escorted_by"] == []
    # The window: entered − padding to left + padding.
    assert manifest["requested"]["from_ms"] == site.base_ms + 5_000
    assert manifest["requested"]["to_ms"] == site.base_ms + 25_000
    # Every event of the room in the window, as `access-events --json` shows it.
    shown = cli_json(
        site.config,
        "access-events",
        "--from",
        utc_text(site.base_ms + 5_000),
        "--to",
        utc_text(site.base_ms + 25_000),
    )
    expected = [e for e in shown if e["room"] == "server-room"]
    assert [e["id"] for e in expected] == ["in-1", "denied-1", "out-1"]
    assert manifest["access_events"] == expected
    # Every camera of the room, none of the lobby's; each its originals and its clip — and
    # the one that recorded nothing named, its whole window a gap.
    assert [c["camera"] for c in manifest["cameras"]] == ROOM_CAMERAS
    by_camera: dict[str, set[str]] = {}
    for entry in manifest["files"]:
        by_camera.setdefault(entry["camera"], set()).add(entry["name"])
    assert set(by_camera) == {"door-cam", "hall-cam"}
    rack = manifest["cameras"][2]
    assert rack["clip"] is None and rack["footage"] is None
    assert rack["gaps"] == [manifest["requested"]]
    for camera in ("door-cam", "hall-cam"):
        section = next(c for c in manifest["cameras"] if c["camera"] == camera)
        assert section["clip"] == f"clip-{camera}.mp4" in by_camera[camera]
        originals = [n for n in by_camera[camera] if n.startswith("segments/")]
        assert len(originals) == 6 and all(n.startswith(f"segments/{camera}-") for n in originals)
    # A receiver without ccvault checks it as its README says, and is told what it holds.
    readme = (out / "README.txt").read_text()
    assert f"visit / 入室: {site.visit_id}" in readme and "clip-<camera>.mp4" in readme
    for command in readme_commands(readme):
        assert run(out, command).returncode == 0, command
    check = verify(site, out)
    assert check.returncode == 0, check.stdout
    assert f"visit {site.visit_id}: c-17 (contractor) in server-room" in check.stdout
    assert "door events: 3" in check.stdout
    checked = json.loads(verify(site, out, "--json").stdout)
    assert checked["ok"] and checked["access_events"] == expected
    assert checked["visit"] == visit
    # Audited like any export, naming the visit; reading the door events audited too.
    start = [r for r in site.audit("export.start") if r["details"]["id"] == summary["id"]]
    assert start[0]["details"]["visit"] == site.visit_id
    assert start[0]["details"]["cameras"] == ROOM_CAMERAS
    done = [r for r in site.audit("export.done") if r["details"]["id"] == summary["id"]]
    assert done[0]["details"]["visit"] == site.visit_id
    read = [r for r in site.audit("access.events") if r["details"].get("export_id")]
    assert read and read[-1]["details"]["visit"] == site.visit_id
    assert read[-1]["details"]["results"] == 3
    with site.catalog() as conn:  # every camera was pinned while it ran, none after
        assert conn.execute("SELECT COUNT(*) FROM export_pins").fetchone()[0] == 0
        job = conn.execute("SELECT * FROM exports WHERE id = ?", (summary["id"],)).fetchone()
    assert job["visit_id"] == site.visit_id and job["state"] == "done"


def test_an_edited_door_event_fails_verification(
    site: Site, bundle: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = bundle
    for edit in ("person", "drop"):
        copy = tmp_path / f"edited-{edit}"
        shutil.copytree(out, copy)
        manifest = json.loads((copy / "manifest.json").read_bytes())
        if edit == "person":
            manifest["access_events"][1]["person"] = "someone-else"
        else:
            del manifest["access_events"][0]
        (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
        check = verify(site, copy)
        assert check.returncode == 1, check.stdout
        assert "the signature does not match manifest.json" in check.stdout


def test_export_visit_refuses_mixed_or_missing_options_and_unknown_visits(site: Site) -> None:
    visit = str(site.visit_id)
    mixed = run_cli(
        site.config, "export", "--visit", visit, "--camera", "door-cam", "--reason", "x"
    )
    assert mixed.returncode == 2 and "--camera" in mixed.stderr, mixed.stderr
    mixed = run_cli(site.config, "export", "--visit", visit, "--to", "now", "--reason", "x")
    assert mixed.returncode == 2 and "--to" in mixed.stderr, mixed.stderr
    missing = run_cli(site.config, "export", "--reason", "x")
    assert missing.returncode == 2 and "--camera" in missing.stderr, missing.stderr
    unknown = run_cli(site.config, "export", "--visit", "9999", "--reason", "x")
    assert unknown.returncode == 3 and "--visit" in unknown.stderr, unknown.stderr
    huge = run_cli(site.config, "export", "--visit", str(2**64), "--reason", "x")
    assert huge.returncode == 2 and "--visit" in huge.stderr, huge.stderr
    assert "Traceback" not in huge.stderr
    with site.catalog() as conn:  # nothing was recorded for any of them
        assert conn.execute("SELECT COUNT(*) FROM exports WHERE reason = 'x'").fetchone()[0] == 0


def test_api_exports_a_visit_202_done_download_verify(site: Site, tmp_path: Path) -> None:
    jobs, writer = site.jobs()
    body = {"visit": site.visit_id, "reason": "api visit"}
    try:
        with serve(site.config, exports=jobs) as api:
            with api.client("viewer") as viewer:
                assert viewer.post("/api/exports", json=body).status_code == 403
            with api.client("operator") as op:
                for extra, field in (({"camera": "door-cam"}, "camera"), ({"from": "-1h"}, "from")):
                    mixed = op.post("/api/exports", json={**body, **extra})
                    assert mixed.status_code == 400, mixed.text
                    assert mixed.json()["error"]["field"] == field
                missing = op.post("/api/exports", json={"reason": "nothing named"})
                assert missing.status_code == 400 and missing.json()["error"]["field"] == "camera"
                huge = op.post("/api/exports", json={**body, "visit": 2**64})
                assert huge.status_code == 422 and huge.json()["error"]["field"] == "visit"
                unknown = op.post("/api/exports", json={**body, "visit": 9999})
                assert unknown.status_code == 404, unknown.text
                assert unknown.json()["error"]["field"] == "visit"
                made = op.post("/api/exports", json=body)
                assert made.status_code == 202, made.text
                assert made.json()["visit"] == site.visit_id
                assert made.json()["cameras"] == ROOM_CAMERAS
                export_id = made.json()["id"]
                job = wait_for(
                    lambda: (
                        (j := op.get(f"/api/exports/{export_id}").json())["state"]
                        in ("done", "failed")
                        and j
                    ),
                    60,
                    what="the API visit export",
                )
                assert job["state"] == "done", job
                tar = op.get(f"/api/exports/{export_id}/download")
                assert tar.status_code == 200
        with tarfile.open(fileobj=io.BytesIO(tar.content)) as archive:
            archive.extractall(tmp_path, filter="data")
        extracted = tmp_path / job["bundle"]
        check = verify(site, extracted)
        assert check.returncode == 0, check.stdout
        manifest = json.loads((extracted / "manifest.json").read_bytes())
        assert manifest["visit"]["id"] == site.visit_id
        assert [e["id"] for e in manifest["access_events"]] == ["in-1", "denied-1", "out-1"]
        start = [r for r in site.audit("export.start") if r["details"]["id"] == export_id]
        assert start[0]["details"]["visit"] == site.visit_id
        assert start[0]["actor"].startswith("api:operator")
    finally:
        jobs.stop()
        writer.close()


def test_the_window_of_an_open_visit_and_of_an_exit_without_entry() -> None:
    open_visit = StoredVisit(1, "r", Visit(1, "p", None, 100_000, None))
    assert window(open_visit, 5_000, 900_000) == (95_000, 900_000)
    exit_only = StoredVisit(2, "r", Visit(2, "p", None, None, 300_000, flags=(Flag.NO_ENTRY,)))
    assert window(exit_only, 5_000, 900_000) == (295_000, 305_000)
    closed = StoredVisit(3, "r", Visit(3, "p", None, 100_000, 200_000))
    assert window(closed, 5_000, 900_000) == (95_000, 205_000)


def _other_room(manifest: dict[str, Any], bundle: Path) -> None:
    manifest["access_events"][0]["room"] = "lobby"


def _outside_window(manifest: dict[str, Any], bundle: Path) -> None:
    manifest["access_events"][0]["time_ms"] = manifest["requested"]["to_ms"]


def _not_an_event(manifest: dict[str, Any], bundle: Path) -> None:
    manifest["access_events"].append("in-9")


def _no_visit(manifest: dict[str, Any], bundle: Path) -> None:
    del manifest["visit"]


def _clip_not_a_name(manifest: dict[str, Any], bundle: Path) -> None:
    manifest["cameras"][0]["clip"] = ["clip-door-cam.mp4"]


def _old_clip_name(manifest: dict[str, Any], bundle: Path) -> None:
    entry = next(f for f in manifest["files"] if f["name"] == "clip-door-cam.mp4")
    (bundle / entry["name"]).rename(bundle / "clip.mp4")
    entry["name"] = "clip.mp4"


def _forged_line(manifest: dict[str, Any], bundle: Path) -> None:
    manifest["visit"]["person"] = "x\nverify-export: ok"
    _other_room(manifest, bundle)


HOSTILE_VISITS = [
    ("event of another room", _other_room, "of another room"),
    ("event outside the window", _outside_window, "outside the requested window"),
    ("event not an object", _not_an_event, "not a door event"),
    ("no visit", _no_visit, "without its visit"),
    ("clip not a name", _clip_not_a_name, "clip is not in the file list"),
    ("clip.mp4 in a visit bundle", _old_clip_name, "outside the bundle's footage"),
    ("a line forged in a field", _forged_line, "of another room"),
]


@pytest.mark.parametrize(
    "edit, problem", [(e, p) for _, e, p in HOSTILE_VISITS], ids=[i for i, _, _ in HOSTILE_VISITS]
)
def test_a_hostile_visit_manifest_fails_cleanly_even_from_a_trusted_signer(
    bundle: tuple[Path, dict[str, Any]], tmp_path: Path, edit: Any, problem: str
) -> None:
    """Signed by a key the checker trusts (the forger's), a visit bundle's door events must
    still be of its room and window, and nothing in them can crash the check or forge a line
    of its report."""
    copy = tmp_path / "bundle"
    shutil.copytree(bundle[0], copy)
    forge(copy, edit)
    result = run_cli(
        None,
        "verify-export",
        str(copy),
        "--key",
        base64.b64encode(FORGER_RAW).decode(),
        env={"CCVAULT_CONFIG": ""},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert problem in result.stdout, result.stdout
    assert "verify-export: ok" not in result.stdout.splitlines()
