"""Finding and watching footage over real HTTP: searches, timelines (a 25-hour DST day),
motion stepping across days, files with ranges, clips, stills and holds — each view audited
once per session, no response naming a path, a purge mid-stream ending cleanly."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av
import cv2
import httpx
import numpy as np
import pytest

from ccvault.catalog.audit import audit_log
from ccvault.catalog.rows import Span
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.host.clock import SystemClock
from ccvault.storage.media import probe, sha256_file
from ccvault.storage.store import SegmentStore
from ccvault.storage.volumes import open_volumes
from tests.api_peer import Api, serve
from tests.conftest import cli_json, pg_catalog, run_cli, write_config
from tests.peers import ffmpeg_exe
from tests.peers.pg_fixture import APP_ROLE, TEMPLATE_DB
from tests.retention_seed import seed


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


# Europe/Berlin, 2026-10-25: clocks go back at 03:00 CEST, so the local day runs from
# 2026-10-24T22:00Z to 2026-10-25T23:00Z — 25 hours, 1500 minutes.
DAY_START, DAY_END = ms("2026-10-24T22:00:00+00:00"), ms("2026-10-25T23:00:00+00:00")
A = ms("2026-10-25T00:30:00+00:00")  # minute 150, fully covered
B = ms("2026-10-25T00:31:30+00:00")  # half of minutes 151 and 152
C = ms("2026-10-25T22:59:00+00:00")  # the day's last minute (1499: 23:59 CET)
D = ms("2026-10-24T21:59:30+00:00")  # straddles the day's start: half of minute 0
SPANS = [  # (start, end, kind) — motion on three different days, lighting in between
    (ms("2026-10-23T12:00:00+00:00"), ms("2026-10-23T12:00:05+00:00"), "motion"),
    (A + 10_000, A + 20_000, "motion"),
    (B + 20_000, B + 40_000, "motion"),
    (ms("2026-10-26T09:00:00+00:00"), ms("2026-10-26T09:00:04+00:00"), "lighting"),
    (ms("2026-10-28T08:00:00+00:00"), ms("2026-10-28T08:00:03+00:00"), "motion"),
]


@dataclass
class Site:
    root: Path
    config: Path
    api: Api
    ids: dict[str, int]
    big: tuple[int, str, int]  # id, sha256, bytes of the large segment on yard
    bodies: list[bytes]

    def get(self, role: str, url: str, **kw: object) -> httpx.Response:
        with self.api.client(role) as client:
            resp = client.get(url, **kw)  # type: ignore[arg-type]
        self.bodies.append(resp.content)
        return resp

    def audit(self, action: str) -> list[dict]:
        loaded = load(self.config).config
        return [r for r in audit_log(loaded).records() if r["action"] == action]


def noise_clip(path: Path, seconds: int) -> Path:
    """Incompressible footage, so a download outlasts the socket buffers."""
    argv = [
        ffmpeg_exe(),
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:s=640x360:r=10,noise=alls=100:allf=t+u",
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-qp",
        "0",
        "-g",
        "10",
        "-bf",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        str(path),
    ]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return path


def store_file(config: Path, camera: str, start_ms: int, src: Path) -> tuple[int, str, int]:
    loaded = load(config).config
    writer = CatalogWriter(loaded.catalog_target, audit_log(loaded), loaded.lock_base)
    clock = SystemClock()
    volumes = open_volumes(loaded, writer, clock.wall_ms())
    media = probe(src)
    tmp = src.with_name("store-tmp.mp4")
    shutil.copyfile(src, tmp)
    digest = sha256_file(tmp)
    stored = SegmentStore(writer, lambda: volumes, clock).add(
        tmp, camera, start_ms, start_ms + media.duration_ms, media, digest, "imported"
    )
    writer.close()
    assert stored.segment_id is not None
    return stored.segment_id, digest, stored.path.stat().st_size


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Site]:
    """The API's reads on a SQLite and on a PostgreSQL catalog (every test here runs on both)."""
    root = tmp_path_factory.mktemp("api-footage")
    catalog = None
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("api_footage", owner=APP_ROLE, template=TEMPLATE_DB)
        request.addfinalizer(lambda: server.drop_database("api_footage"))
        catalog = pg_catalog(server, url, root)
    config = write_config(
        root,
        [
            {"name": "door", "url": "demo://", "enabled": False},
            {"name": "yard", "url": "demo://", "enabled": False},
        ],
        timezone="Europe/Berlin",
        catalog=catalog,
    )
    config.write_text(
        config.read_text() + "\n[retention]\ncontinuous_days = 3650\n"
        "motion_days = 3650\nmax_days = 3650\n"
    )
    seeded = seed(
        config,
        [{"camera": "door", "start_ms": t, "seconds": 60.0} for t in (A, B, C, D)],
        root / "cache",
    )
    ids = dict(zip("ABCD", (s.id for s in seeded), strict=True))
    big = store_file(
        config, "yard", ms("2026-10-25T10:00:00+00:00"), noise_clip(root / "cache" / "noise.mp4", 5)
    )
    loaded = load(config).config
    writer = CatalogWriter(loaded.catalog_target, audit_log(loaded), loaded.lock_base)
    writer.motion.record(
        "door",
        [],
        1,
        [Span(a, b, 0.5, 0.1, kind, (0.1, 0.1, 0.5, 0.5)) for a, b, kind in SPANS],
        None,
        (0, 0),
    )
    writer.close()
    with serve(config) as api:
        yield Site(root, config, api, ids, big, [])


def test_segments_match_the_cli_and_each_search_is_audited_once(site: Site) -> None:
    query = {"camera": "door", "from": "2026-10-25T00:00:00Z", "to": "2026-10-25T01:00:00Z"}
    resp = site.get("viewer", "/api/segments", params=query)
    assert resp.status_code == 200, resp.text
    found = resp.json()
    assert [s["id"] for s in found] == [site.ids["A"], site.ids["B"]]
    assert found[0]["start"] == "2026-10-25T00:30:00.000Z" and found[0]["start_ms"] == A
    assert found[0]["end_ms"] == A + 60_000 and found[0]["width"] == 160
    assert all("path" not in s for s in found)
    cli = cli_json(
        site.config,
        "segments",
        "--camera",
        "door",
        "--from",
        "2026-10-25T00:00:00Z",
        "--to",
        "2026-10-25T01:00:00Z",
    )
    assert [{k: v for k, v in s.items() if k != "path"} for s in cli] == found
    assert all(Path(s["path"]).is_file() for s in cli)
    assert site.get("viewer", "/api/segments", params=query).json() == found
    records = [
        r
        for r in site.audit("search.segments")
        if r["details"]["from_ms"] == DAY_START + 2 * 3_600_000
    ]
    assert len(records) == 1, records
    assert records[0]["actor"].startswith("api:viewer")
    assert records[0]["details"]["camera"] == "door" and records[0]["details"]["results"] == 2

    motion = site.get("viewer", "/api/motion", params=query).json()
    assert [(s["start_ms"], s["end_ms"]) for s in motion] == [SPANS[1][:2], SPANS[2][:2]]
    cli = cli_json(
        site.config,
        "motion",
        "--camera",
        "door",
        "--from",
        "2026-10-25T00:00:00Z",
        "--to",
        "2026-10-25T01:00:00Z",
    )
    assert cli == motion
    assert len(site.audit("search.motion")) == 1


def test_timeline_of_a_25_hour_day(site: Site) -> None:
    day = site.get("viewer", "/api/timeline", params={"camera": "door", "date": "2026-10-25"})
    assert day.status_code == 200, day.text
    t = day.json()
    assert (t["start_ms"], t["end_ms"], t["minutes"]) == (DAY_START, DAY_END, 1500)
    assert len(t["coverage"]) == 1500 and t["timezone"] == "Europe/Berlin"
    covered = {i: c for i, c in enumerate(t["coverage"]) if c}
    assert covered == {0: 0.5, 150: 1.0, 151: 0.5, 152: 0.5, 1499: 1.0}
    assert [(g["start_ms"], g["end_ms"]) for g in t["gaps"]] == [
        (DAY_START + 30_000, A),
        (A + 60_000, B),
        (B + 60_000, C),
    ]
    assert t["motion_minutes"] == [150, 151, 152] and t["motion_count"] == 2
    summer = site.get("viewer", "/api/timeline", params={"camera": "door", "date": "2026-10-24"})
    assert summer.json()["minutes"] == 1440 and summer.json()["coverage"][-1] == 0.5


def test_motion_steps_across_days(site: Site) -> None:
    def step(way: str, at: int) -> httpx.Response:
        key = "after" if way == "next" else "before"
        return site.get("viewer", f"/api/motion/{way}", params={"camera": "door", key: _iso(at)})

    assert step("next", SPANS[0][0]).json()["start_ms"] == SPANS[1][0]
    skipped = step("next", SPANS[2][0]).json()  # the lighting span is not motion
    assert skipped["start_ms"] == SPANS[4][0] and skipped["kind"] == "motion"
    assert step("prev", SPANS[1][0]).json()["start_ms"] == SPANS[0][0]
    assert step("next", SPANS[4][0]).status_code == 404
    none = step("prev", SPANS[0][0])
    assert none.status_code == 404 and none.json()["error"]["code"] == "not_found"


def _iso(at: int) -> str:
    return datetime.fromtimestamp(at / 1000, UTC).isoformat()


def test_cameras_show_state_and_footage_ends(site: Site) -> None:
    cams = {c["name"]: c for c in site.get("viewer", "/api/cameras").json()}
    assert set(cams) == {"door", "yard"}
    door = cams["door"]
    assert (door["enabled"], door["state"]) == (False, "disabled")
    assert (door["first_footage_ms"], door["last_footage_ms"]) == (D, C + 60_000)
    assert door["last_footage"] == "2026-10-25T23:00:00.000Z"


def test_segment_file_with_ranges_is_audited_once(site: Site) -> None:
    seg = site.get(
        "viewer",
        "/api/segments",
        params={"camera": "door", "from": "2026-10-25T00:31:30Z", "to": "2026-10-25T00:31:31Z"},
    ).json()[0]
    url = f"/api/segments/{seg['id']}/file"
    full = site.get("viewer", url)
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(full.content).hexdigest() == seg["sha256"]
    assert len(full.content) == seg["bytes"] and full.headers["accept-ranges"] == "bytes"
    part = site.get("viewer", url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{seg['bytes']}"
    tail = site.get("viewer", url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == full.content[-50:]
    beyond = site.get("viewer", url, headers={"Range": f"bytes={seg['bytes']}-"})
    assert beyond.status_code == 416 and beyond.json()["error"]["field"] == "Range"
    views = [r for r in site.audit("view.segment") if r["object"] == f"segment:{seg['id']}"]
    assert len(views) == 1 and views[0]["details"]["sha256"] == seg["sha256"]
    site.get("operator", url, headers={"Range": "bytes=0-9"})  # another person: another record
    assert (
        len([r for r in site.audit("view.segment") if r["object"] == f"segment:{seg['id']}"]) == 2
    )


def test_clip_is_the_range_cut_at_keyframes(site: Site) -> None:
    query = {"camera": "door", "from": "2026-10-25T00:30:10.500Z", "to": "2026-10-25T00:30:40Z"}
    clip = site.get("viewer", "/api/clip.mp4", params=query)
    assert clip.status_code == 200, clip.text
    assert clip.headers["x-ccvault-start"] == "2026-10-25T00:30:10.000Z"
    assert clip.headers["x-ccvault-end"] == "2026-10-25T00:30:40.000Z"
    with av.open(io.BytesIO(clip.content)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for packet in container.demux(stream) if packet.size)
    assert abs(frames / 5 - 29.5) <= 1.0, frames  # 5 fps, a keyframe every second
    site.get("viewer", "/api/clip.mp4", params=query)
    assert len(site.audit("view.clip")) == 1
    long = {"camera": "door", "from": "2026-10-25T00:00:00Z", "to": "2026-10-25T00:31:00Z"}
    refused = site.get("viewer", "/api/clip.mp4", params=long)
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "to"
    assert site.get("operator", "/api/clip.mp4", params=long).status_code == 200
    clips = load(site.config).config.state_dir / ".clips"
    assert not list(clips.iterdir()), "clip work files are removed"


def test_still_is_the_keyframe_before(site: Site) -> None:
    still = site.get(
        "viewer", "/api/cameras/door/still.jpg", params={"at": "2026-10-25T00:30:05.500Z"}
    )
    assert still.status_code == 200 and still.headers["content-type"] == "image/jpeg"
    assert still.headers["x-ccvault-at"] == "2026-10-25T00:30:05.000Z"
    image = cv2.imdecode(np.frombuffer(still.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (90, 160, 3)
    gap = site.get("viewer", "/api/cameras/door/still.jpg", params={"at": "2026-10-25T12:00Z"})
    assert gap.status_code == 404


def test_holds_over_http(site: Site) -> None:
    body = {
        "cameras": ["door"],
        "from": "2026-10-25T00:00:00Z",
        "to": "2026-10-25T01:00:00Z",
        "reason": "incident 42",
    }
    with site.api.client("viewer") as viewer:
        assert viewer.post("/api/holds", json=body).status_code == 403
    with site.api.client("operator") as op:
        made = op.post("/api/holds", json=body)
        assert made.status_code == 201, made.text
        hold = made.json()
        assert hold["state"] == "active" and hold["cameras"] == ["door"]
        assert hold["from"] == "2026-10-25T00:00:00.000Z" and hold["actor"].startswith("api:")
        listed = site.get("viewer", "/api/holds", params={"camera": "door"}).json()
        assert [h["id"] for h in listed] == [hold["id"]]
        assert site.get("viewer", "/api/holds", params={"camera": "yard"}).json() == []
        day = site.get("viewer", "/api/timeline", params={"camera": "door", "date": "2026-10-25"})
        assert [h["id"] for h in day.json()["holds"]] == [hold["id"]]
        gone = op.request("DELETE", f"/api/holds/{hold['id']}", json={"reason": "closed"})
        assert gone.status_code == 200 and gone.json()["state"] == "released"
        again = op.request("DELETE", f"/api/holds/{hold['id']}", json={"reason": "closed"})
        assert again.status_code == 409
        assert op.request("DELETE", "/api/holds/9999", json={"reason": "x"}).status_code == 404
        past = op.post("/api/holds", json={**body, "until": "2020-01-01T00:00:00Z"})
        assert past.status_code == 400 and past.json()["error"]["field"] == "until"
    added = [r for r in site.audit("hold.add") if r["details"]["id"] == hold["id"]]
    released = [r for r in site.audit("hold.release") if r["details"]["id"] == hold["id"]]
    assert len(added) == len(released) == 1
    assert added[0]["actor"] == released[0]["actor"] == hold["actor"]


def test_explain_over_http_is_what_the_cli_says(site: Site) -> None:
    """Why footage is kept, and why there is none, answered alike by the API and the CLI."""
    at = {"camera": "door", "at": "2026-10-25T00:30:30Z"}
    kept = site.get("viewer", "/api/explain", params=at)
    assert kept.status_code == 200, kept.text
    assert kept.json() == cli_json(site.config, "explain", "--camera", "door", "--at", at["at"])
    answer = kept.json()
    node = load(site.config).config.node.name  # the one node: this host's name
    assert (answer["segment_id"], answer["node"], answer["action"]) == (site.ids["A"], node, "keep")
    assert answer["rule"] == "window" and answer["until_ms"] == A + 3650 * 86_400_000
    assert (answer["start"], answer["until"]) == (
        "2026-10-25T00:30:00.000Z",
        "2036-10-22T00:30:00.000Z",
    )
    never = {"camera": "door", "at": "2026-10-25T05:00:00Z"}
    gone = site.get("viewer", "/api/explain", params=never)
    assert gone.status_code == 404, gone.text
    said = run_cli(site.config, "explain", "--camera", "door", "--at", never["at"])
    assert said.returncode == 3 and "nothing was ever recorded then" in said.stderr
    assert gone.json()["error"]["message"] in said.stderr


@pytest.mark.parametrize(
    ("url", "params", "status", "field"),
    [
        ("/api/segments", {"camera": "door", "from": "now", "to": "-1h"}, 400, "to"),
        ("/api/segments", {"camera": "nope", "from": "-1h", "to": "now"}, 404, "camera"),
        ("/api/segments", {"camera": "door", "from": "last tuesday", "to": "now"}, 400, "from"),
        # 02:30 occurs twice in Berlin on 2026-10-25: refused, not guessed
        (
            "/api/motion",
            {"camera": "door", "from": "2026-10-25T02:30:00", "to": "now"},
            400,
            "from",
        ),
        ("/api/segments", {"camera": "door", "from": "-1h", "to": "+9999999999999w"}, 400, "to"),
        ("/api/timeline", {"camera": "door", "date": "2026-13-01"}, 400, "date"),
        ("/api/timeline", {"camera": "door", "date": "9999-12-31"}, 400, "date"),
        ("/api/timeline", {"camera": "door", "date": "../../etc"}, 400, "date"),
        ("/api/segments/999999/file", {}, 404, None),
        ("/api/segments/abc/file", {}, 422, "segment_id"),
        ("/api/segments/..%2f..%2fcatalog.sqlite/file", {}, 404, None),  # ids only, no paths
        ("/api/cameras/nope/still.jpg", {"at": "now"}, 404, "name"),
        ("/api/motion/next", {"camera": "door", "after": "2026-10-25T02:30:00"}, 400, "after"),
        ("/api/explain", {"camera": "door", "at": "last tuesday"}, 400, "at"),
        ("/api/explain", {"camera": "nope", "at": "now"}, 404, "camera"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    site: Site, url: str, params: dict, status: int, field: str | None
) -> None:
    resp = site.get("viewer", url, params=params)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["field"] == field


def test_a_segment_purged_mid_stream_ends_cleanly(site: Site) -> None:
    seg_id, digest, size = site.big
    loaded = load(site.config).config
    with (
        site.api.client("viewer") as client,
        client.stream("GET", f"/api/segments/{seg_id}/file") as resp,
    ):
        assert resp.status_code == 200 and int(resp.headers["content-length"]) == size
        chunks = resp.iter_raw(65536)
        got = [next(chunks)]
        writer = CatalogWriter(loaded.catalog_target, audit_log(loaded), loaded.lock_base)
        intents = writer.intents.begin_deletes(
            [seg_id], SystemClock().wall_ms(), "test", {"rule": "t"}
        )
        (loaded.storage.volumes[0].path / intents[0].src_path).unlink()
        writer.intents.clear([i.id for i in intents])
        writer.close()
        got += list(chunks)
    assert hashlib.sha256(b"".join(got)).hexdigest() == digest
    assert size > 8 * 2**20, "larger than the socket buffers"
    after = site.get("viewer", f"/api/segments/{seg_id}/file")
    assert after.status_code == 404 and after.json()["error"]["code"] == "not_found"
    assert site.get("viewer", "/api/cameras").status_code == 200


def test_no_response_names_a_path(site: Site) -> None:
    """Last: every body this module received, JSON and errors alike."""
    assert len(site.bodies) > 30
    for body in site.bodies:
        if body[:1] in (b"{", b"["):
            assert str(site.root).encode() not in body, json.loads(body)
