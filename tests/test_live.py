"""Live view end to end: a real RTSP camera (gst-rtsp-server), the real daemon, HTTP clients.

The live stream is the recorder's own stream copy as fragmented MP4: it starts with an init
segment, its fragments decode (PyAV), and each frame reaches a viewer soon after the camera
sent it — measured against a second, direct RTSP client of the same shared camera stream
(loopback: it receives each frame as the server sends it), by finding each frame's own bytes
(its slice NAL units, identical under stream copy) in the fragments. A viewer without the role
is refused, a start is audited, and a client that stops reading neither stalls the recording
nor holds back another viewer: it is dropped.
"""

from __future__ import annotations

import io
import itertools
import re
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from ccvault.catalog.audit import audit_log
from ccvault.config.loading import load
from tests.conftest import Daemon, cli_json, event_ms, run_cli, wait_for, write_config
from tests.live_client import Received, direct_arrivals, latencies
from tests.peers import RtspServer
from tests.test_web import DESKTOP, Browser, browser, collect_errors, screenshot  # noqa: F401 (browser: a fixture)

SEGMENT_S = 2


@dataclass
class Site:
    config: Path
    url: str
    tokens: dict[str, str]
    daemon: Daemon
    camera: RtspServer  # "door": a moving ball, 10 fps, a keyframe a second
    busy: RtspServer  # "busy": noise at a high bitrate, so a stalled client falls far behind

    def live(self, camera: str) -> str:
        return f"{self.url}/api/cameras/{camera}/live"

    def auth(self, role: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[role]}"}

    def audit(self, action: str) -> list[dict[str, Any]]:
        loaded = load(self.config).config
        return [r for r in audit_log(loaded).records() if r["action"] == action]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("live")
    camera = RtspServer(fps=10, keyint=10).start()
    busy = RtspServer(fps=10, keyint=10, pattern="snow", bitrate_kbps=4000).start()
    config = write_config(
        root,
        [
            {"name": "door", "url": f"rtsp://127.0.0.1:{camera.port}/cam"},
            {"name": "busy", "url": f"rtsp://127.0.0.1:{busy.port}/cam"},
            {"name": "yard", "url": "demo://", "enabled": False},
        ],
        segment_seconds=SEGMENT_S,
    )
    tokens = {}
    for role in ("viewer", "operator", "integration"):
        added = run_cli(config, "user", "add", f"{role[:2]}-staff", "--role", role)
        assert added.returncode == 0, added.stderr
        tokens[role] = added.stdout.strip()
    daemon = Daemon(config).start()
    try:
        url = daemon.wait_event("http.listening", 10)["url"]
        for name in ("door", "busy"):
            daemon.wait_event("camera.state", 60, camera=name, new="recording")
        yield Site(config, url, tokens, daemon, camera, busy)
    finally:
        assert daemon.stop() == 0
        camera.stop()
        busy.stop()


def watch(site: Site, camera: str, role: str = "viewer") -> tuple[Received, threading.Thread]:
    received = Received()
    thread = threading.Thread(
        target=received.read, args=(site.live(camera), site.auth(role)), daemon=True
    )
    thread.start()
    return received, thread


def decoded_frames(data: bytes) -> list[Any]:
    with av.open(io.BytesIO(data), format="mp4") as container:
        return list(container.decode(container.streams.video[0]))


def test_the_live_stream_is_an_init_segment_then_fragments_that_decode(site: Site) -> None:
    received, thread = watch(site, "door")
    wait_for(
        lambda: sum(k == b"moof" for _, k, _ in received.arrivals) >= 25,
        30,
        what="25 live fragments (5 s: the stream runs on over two segment files or more)",
    )
    received.stop.set()
    thread.join(10)
    assert received.status == 200
    assert re.fullmatch(r'video/mp4; codecs="avc1\.[0-9a-f]{6}"', received.content_type)
    kinds = [k for _, k, _ in received.arrivals]
    assert kinds[:2] == [b"ftyp", b"moov"], kinds[:4]
    assert set(kinds[2:]) == {b"moof", b"mdat"}
    frames = decoded_frames(bytes(received.data))
    assert len(frames) >= 15, "fragments of a few frames each, every frame decodes"
    assert frames[0].key_frame, "a viewer starts at a keyframe"
    assert (frames[0].width, frames[0].height) == (site.camera.width, site.camera.height)
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)


def test_a_viewer_sees_each_frame_within_a_second_or_so_of_the_camera_sending_it(
    site: Site,
) -> None:
    stop, direct = threading.Event(), []
    rtsp = threading.Thread(
        target=direct_arrivals,
        args=(f"rtsp://127.0.0.1:{site.camera.port}/cam", stop, direct),
        daemon=True,
    )
    rtsp.start()
    wait_for(lambda: len(direct) >= 5, 30, what="the direct RTSP client's first frames")
    received, thread = watch(site, "door")
    wait_for(lambda: len(latencies(direct, received)) >= 60, 60, what="60 frames seen live")
    stop.set()
    received.stop.set()
    thread.join(10)
    rtsp.join(10)
    found = sorted(latencies(direct, received))
    p50, p95 = statistics.median(found), found[int(0.95 * len(found))]
    assert min(found) > -0.5, "a frame cannot arrive live before the camera sent it"
    assert p50 <= 1.0, f"live view lags: median {p50:.2f} s"
    assert p95 <= 3.0, f"live view lags: 95th percentile {p95:.2f} s (≤ 3 s required)"


def test_live_view_needs_the_viewer_role_and_each_start_is_audited(site: Site) -> None:
    refused = httpx.get(site.live("door"), headers=site.auth("integration"), timeout=10)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert httpx.get(site.live("door"), timeout=10).status_code == 401
    unknown = httpx.get(site.live("garage"), headers=site.auth("viewer"), timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "name"
    off = httpx.get(site.live("yard"), headers=site.auth("viewer"), timeout=10)
    assert off.status_code == 409 and "disabled" in off.json()["error"]["message"]
    assert str(site.config.parent) not in off.text, "no server path in an answer"

    before = len(site.audit("view.live"))
    head = httpx.head(site.live("door"), headers=site.auth("viewer"), timeout=10)
    assert head.status_code == 200 and head.headers["content-type"].startswith("video/mp4")
    assert head.content == b"", "a HEAD starts no stream (and no audit record: below)"
    received, thread = watch(site, "door", "operator")
    wait_for(lambda: len(received.arrivals) >= 3, 30, what="the operator's live stream")
    received.stop.set()
    thread.join(10)
    records = site.audit("view.live")[before:]
    assert [(r["actor"], r["object"], r["details"]["camera"]) for r in records] == [
        ("api:op-staff", "camera:door", "door")
    ], "one record per start, with the user and the camera; refusals start nothing"


def stalled_client(site: Site, camera: str) -> socket.socket:
    """A viewer that reads the answer's first bytes, then nothing: its receive window fills."""
    host, port = site.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /api/cameras/{camera}/live HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {site.tokens['viewer']}\r\n\r\n".encode()
    )
    assert sock.recv(12) == b"HTTP/1.1 200"
    return sock


@pytest.mark.slow
def test_a_stalled_viewer_never_stalls_recording_and_is_dropped(site: Site) -> None:
    sock = stalled_client(site, "busy")
    stalled_ms = round(time.time() * 1000)
    try:
        healthy, thread = watch(site, "busy")
        dropped = site.daemon.wait_event("live.viewer_dropped", 120, camera="busy")
        dropped_ms = event_ms(dropped)
        wait_for(
            lambda: stored_until(site, "busy") >= dropped_ms + SEGMENT_S * 1000,
            30,
            what="the segments after the drop stored",
        )
        found = segments(site, "busy", stalled_ms - SEGMENT_S * 1000)
        assert found[0]["start_ms"] <= stalled_ms, "footage from before the stall on"
        gaps = [b["start_ms"] - a["end_ms"] for a, b in itertools.pairwise(found)]
        assert max(gaps) < 500, f"recording had holes while a viewer stalled: {gaps}"
        fragments = sum(k == b"moof" for _, k, _ in healthy.arrivals)
        wait_for(
            lambda: sum(k == b"moof" for _, k, _ in healthy.arrivals) >= fragments + 10,
            30,
            what="the other viewer's fragments going on",
        )
        assert not healthy.ended, "another viewer of the camera is not held back or dropped"
        healthy.stop.set()
        thread.join(10)
    finally:
        sock.close()
    cameras = {c["name"]: c["state"] for c in cli_json(site.config, "status")["cameras"]}
    assert cameras["busy"] == "recording"


def segments(site: Site, camera: str, since_ms: int) -> list[dict[str, Any]]:
    found = cli_json(site.config, "segments", "--camera", camera, "--from", "-10m", "--to", "now")
    return [s for s in found if s["end_ms"] > since_ms]


def stored_until(site: Site, camera: str) -> int:
    found = segments(site, camera, 0)
    return found[-1]["end_ms"] if found else 0


@pytest.mark.slow
def test_the_cameras_page_plays_each_camera_live_follows_its_state_and_opens_its_timeline(
    browser: Browser,  # noqa: F811 (the fixture imported above)
    site: Site,
) -> None:
    context = browser.browser.new_context(viewport=DESKTOP)
    errors: list[str] = []
    try:
        page = context.new_page()
        collect_errors(page, errors)
        page.goto(site.url + "/#/cameras")
        page.fill("#token", site.tokens["viewer"])
        page.click("form.signin button[type=submit]")
        door = ".card[data-camera='door']"
        page.wait_for_selector(f"{door} .state.recording")
        page.wait_for_selector(f"{door} video.live[data-state='playing']", timeout=30_000)
        video = page.locator(f"{door} video.live")
        first = video.evaluate("v => v.currentTime")
        page.wait_for_function(
            "([sel, t]) => document.querySelector(sel).currentTime > t + 2",
            arg=[f"{door} video.live", first],
            timeout=30_000,
        )
        behind = float(video.get_attribute("data-behind") or "99")
        assert behind < 3.0, f"the page plays {behind} s behind the newest frame it holds"
        assert page.locator(".card[data-camera='yard'] video").count() == 0, "disabled: no live"
        screenshot(page, "live-grid")
        site.camera.stop()  # the camera goes away: its card says so, its picture waits
        try:
            page.wait_for_selector(f"{door} .state:not(.recording)", timeout=30_000)
            page.wait_for_selector(f"{door} video.live[data-state='waiting']", timeout=30_000)
        finally:
            site.camera.start()
        page.wait_for_selector(f"{door} .state.recording", timeout=60_000)
        page.wait_for_selector(f"{door} video.live[data-state='playing']", timeout=60_000)
        video.click()
        page.wait_for_selector(".track[data-camera='door']")
        assert "camera=door" in page.url and "#/day" in page.url
        assert page.locator("video.live").count() == 0, "leaving the grid ends its live views"
    finally:
        context.close()
    assert not errors, errors


def test_live_view_off_is_refused_by_the_api(tmp_path: Path, daemon_factory: Any) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://?fps=5"}])
    config.write_text(
        config.read_text().replace("[recording]\n", "[recording]\nlive_view = false\n")
    )
    token = run_cli(config, "user", "add", "vi-staff", "--role", "viewer").stdout.strip()
    daemon = daemon_factory(config)
    url = daemon.wait_event("http.listening", 10)["url"]
    daemon.wait_event("camera.state", 60, camera="door", new="recording")
    off = httpx.get(
        f"{url}/api/cameras/door/live", headers={"authorization": f"Bearer {token}"}, timeout=10
    )
    assert off.status_code == 409 and "[recording] live_view" in off.json()["error"]["message"]
    assert daemon.stop() == 0
