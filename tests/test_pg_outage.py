"""Losing the database is not losing footage (issue 16, item 4).

A real daemon records a real RTSP camera into a PostgreSQL catalog; the PostgreSQL server is
stopped mid-recording (`pg_ctl stop -m fast`, and `-m immediate`: no shutdown checkpoint,
crash recovery at the next start), left down for several segment lengths, and started again.
Recording never stops: segments wait in the spool (made durable there), `catalog_unreachable`
fires through the log, `ccvault status` says the catalog is unreachable and how much waits;
when the server is back ingest stores what waited and the alert resolves and is put on record.
In the end every file in the store is catalogued exactly once and the catalogued footage runs
from the first segment to the last with no gap: nothing lost, nothing twice.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import threading
import time
from pathlib import Path

import httpx
import pytest

from ccvault.ingest.spool import read_list
from ccvault.timefmt import utc_text
from tests.conftest import cli_json, pg_catalog, run_cli, wait_for, write_config
from tests.peers import RtspServer
from tests.peers.pg_fixture import APP_ROLE
from tests.peers.postgres import PostgresServer, postgres_available
from tests.test_disk_pressure import event_ms, ingested, stop

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL 15 is not installed"),
]

SEGMENT_S = 2
OUTAGE_SEGMENTS = 5  # the server stays down while this many segments are finished


def spooled(spool: Path) -> list[Path]:
    """Finished segments waiting in the spool (listed by ffmpeg, file still there)."""
    return [
        run / entry.name
        for run in sorted(spool.glob("door/*"))
        if run.is_dir()
        for entry in read_list(run / "segments.csv")
        if (run / entry.name).exists()
    ]


@pytest.fixture
def own_postgres() -> PostgresServer:
    """A server of this test's own: the session's shared one must not stop under others."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgresql_stopped_mid_recording_loses_no_segment_and_doubles_none(
    tmp_path: Path, daemon_factory, own_postgres: PostgresServer, mode: str
) -> None:
    server = own_postgres
    server.create_role(APP_ROLE, secrets.token_urlsafe(12))
    url = server.create_database("outage", owner=APP_ROLE)
    rtsp = RtspServer().start()
    config = write_config(
        tmp_path,
        [{"name": "door", "url": f"rtsp://127.0.0.1:{rtsp.port}/cam"}],
        segment_seconds=SEGMENT_S,
        offline_after=60,
        catalog=pg_catalog(server, url, tmp_path),
    )
    # Scraped without a token: tokens are checked in the catalog, out of reach meanwhile.
    config.write_text(config.read_text().replace("[http]\n", "[http]\nmetrics_public = true\n"))
    with config.open("a") as f:
        f.write("\n[alerts]\ncheck_seconds = 1\n")
    volume = tmp_path / "hot"
    daemon = daemon_factory(config)
    metrics = daemon.wait_event("http.listening", timeout=5)["url"] + "/metrics"
    started_ms = int(time.time() * 1000)
    try:
        wait_for(lambda: len(ingested(daemon, "door")) >= 3, 60, what="three segments stored")
        server.stop(mode)
        fired = daemon.wait_event("alert.fired", timeout=30, alert="catalog_unreachable")
        assert fired["severity"] == "critical", fired
        stored_before = len(ingested(daemon, "door"))
        wait_for(
            lambda: len(spooled(volume / ".spool")) >= OUTAGE_SEGMENTS,
            OUTAGE_SEGMENTS * SEGMENT_S * 4 + 30,
            what=f"{OUTAGE_SEGMENTS} segments waiting in the spool",
        )
        assert len(ingested(daemon, "door")) <= stored_before + 1  # one in flight at most
        _status_shows_the_outage(config)
        wait_for(
            lambda: gauge(metrics, "ccvault_spool_backlog_segments") >= OUTAGE_SEGMENTS,
            10,
            what="the spool backlog in /metrics",
        )
        assert gauge(metrics, "ccvault_catalog_reachable") == 0
        # The camera records on: a segment kept safe in the spool is not a failing camera,
        # and one outage is one alert.
        others = {"recording_failed", "catalog_error", "camera_offline"}
        assert not [e for e in daemon.events if e.get("alert") in others]
        assert [e for e in daemon.events if e.get("event") == "spool.kept"]

        server.start()
        resolved = daemon.wait_event("alert.resolved", timeout=60, alert="catalog_unreachable")
        assert event_ms(resolved) >= event_ms(fired)
        wait_for(
            lambda: len(spooled(volume / ".spool")) <= 1, 60, what="the spool stored (caught up)"
        )
        assert gauge(metrics, "ccvault_catalog_reachable") == 1
        caught_up = len(ingested(daemon, "door"))
        wait_for(
            lambda: len(ingested(daemon, "door")) >= caught_up + 2, 30, what="recording goes on"
        )
    finally:
        (tmp_path / "daemon.log").write_text("".join(daemon.raw))
    assert stop(daemon, tmp_path) == 0
    _every_segment_once(config, volume, started_ms)
    history = cli_json(config, "alerts")
    [outage] = [a for a in history["recent"] if a["name"] == "catalog_unreachable"]
    assert outage["resolved"] is not None, outage


def gauge(url: str, name: str) -> float:
    """A gauge without labels, as Prometheus would scrape it."""
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    [line] = [ln for ln in answer.text.splitlines() if ln.startswith(f"{name} ")]
    return float(line.split()[1])


def _status_shows_the_outage(config: Path) -> None:
    shown = run_cli(config, "status", "--json")
    assert shown.returncode == 1, shown.stderr
    report = json.loads(shown.stdout)
    assert report["catalog"]["reachable"] is False
    assert "unreachable" in report["catalog"]["error"]
    assert report["spool_backlog"]["segments"] >= OUTAGE_SEGMENTS
    assert report["spool_backlog"]["oldest_end"] is not None
    text = run_cli(config, "status")
    assert text.returncode == 1 and "catalog: UNREACHABLE" in text.stdout, text.stdout


def _every_segment_once(config: Path, volume: Path, started_ms: int) -> None:
    """Every file in the store has one row and every row its file; no start twice; the
    footage runs on without a gap (what ffmpeg finished during the outage is all there)."""
    listed = cli_json(
        config,
        "segments",
        "--camera",
        "door",
        "--from",
        utc_text(started_ms - 60_000),
        "--to",
        utc_text(int(time.time() * 1000)),
    )
    starts = [s["start_ms"] for s in listed]
    assert len(starts) == len(set(starts)), "a segment catalogued twice"
    files = {str(p.relative_to(volume)) for p in (volume / "door").rglob("*.mp4")}
    assert {str(Path(s["path"]).relative_to(volume)) for s in listed} == files
    ordered = sorted(listed, key=lambda s: s["start_ms"])
    gaps = [b["start_ms"] - a["end_ms"] for a, b in itertools.pairwise(ordered)]
    assert max(gaps) < 1000, f"footage missing between segments: {gaps}"
    span_s = (ordered[-1]["end_ms"] - ordered[0]["start_ms"]) / 1000
    assert len(listed) >= span_s / SEGMENT_S - 2, (len(listed), span_s)
    for seg in listed:
        assert hashlib.sha256(Path(seg["path"]).read_bytes()).hexdigest() == seg["sha256"], seg
    reconciled = run_cli(config, "reconcile", "--json")
    assert reconciled.returncode == 0, reconciled.stderr
    assert json.loads(reconciled.stdout)["missing"] == []


@pytest.mark.slow
def test_a_daemon_started_while_postgresql_is_down_records_and_stores_it_all_once_it_answers(
    tmp_path: Path, daemon_factory, own_postgres: PostgresServer
) -> None:
    """Recording is the point: the cameras record before the catalog answers (into a volume's
    spool, the volume's identity read from its file), and the full start-up — volumes checked
    against the catalog, reconcile — runs once it does, storing what was recorded meanwhile."""
    server = own_postgres
    server.create_role(APP_ROLE, secrets.token_urlsafe(12))
    url = server.create_database("late", owner=APP_ROLE)
    rtsp = RtspServer().start()
    config = write_config(
        tmp_path,
        [{"name": "door", "url": f"rtsp://127.0.0.1:{rtsp.port}/cam"}],
        segment_seconds=SEGMENT_S,
        offline_after=60,
        catalog=pg_catalog(server, url, tmp_path),
    )
    volume = tmp_path / "hot"
    first = daemon_factory(config)  # the volume gets its identity; a first segment or two
    wait_for(lambda: len(ingested(first, "door")) >= 1, 60, what="a first segment stored")
    assert stop(first, tmp_path) == 0
    server.stop("fast")

    recorded: dict[str, str] = {}  # what the cameras recorded before the catalog answered

    def start_server_once_recorded() -> None:
        wait_for(
            lambda: len(spooled(volume / ".spool")) >= OUTAGE_SEGMENTS,
            OUTAGE_SEGMENTS * SEGMENT_S * 4 + 30,
            what="segments recorded before the catalog answers",
        )
        for path in spooled(volume / ".spool"):
            recorded[path.name + path.parent.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        server.start()

    starter = threading.Thread(target=start_server_once_recorded)
    starter.start()
    daemon = daemon_factory(config)  # ready once the catalog answered
    starter.join()
    try:
        assert daemon.wait_event("daemon.catalog_unreachable", timeout=1)["spool"] == str(
            volume / ".spool"
        )
        assert len(recorded) >= OUTAGE_SEGMENTS
        wait_for(lambda: len(ingested(daemon, "door")) >= len(recorded) + 2, 60, what="stored")
    finally:
        (tmp_path / "daemon.log").write_text("".join(daemon.raw))
    assert stop(daemon, tmp_path) == 0
    listed = cli_json(config, "segments", "--camera", "door", "--from", "-1h", "--to", "now")
    hashes = [s["sha256"] for s in listed]
    assert len(hashes) == len(set(hashes)), "a segment catalogued twice"
    assert set(recorded.values()) <= set(hashes), "recorded before the catalog answered, lost"
    files = {str(p.relative_to(volume)) for p in (volume / "door").rglob("*.mp4")}
    assert {str(Path(s["path"]).relative_to(volume)) for s in listed} == files
