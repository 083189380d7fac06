"""`GET /metrics`: the Prometheus metrics (ccvault.service.metrics) as rendered, who may read
them, and the counters moved by the real ingest and retention code paths."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccvault import __version__
from ccvault.catalog.audit import audit_log
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.alerts import ALERT_DEFAULTS
from ccvault.config.loading import load
from ccvault.host.clock import SystemClock
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.retention.executor import Executor, remove_leftovers
from ccvault.retention.passes import run_pass
from ccvault.service.metrics import PURGE_RULES, Metrics
from ccvault.storage.media import probe, sha256_file
from ccvault.storage.store import SegmentStore
from ccvault.storage.volumes import open_volumes
from ccvault.views.health import CameraHealth, Health, VolumeHealth
from tests.api_peer import Api, serve
from tests.conftest import write_config
from tests.retention_seed import DAY_MS, clip

HOUR_MS = 3_600_000
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: Metrics) -> Samples:
    """Every sample of render(): (name, sorted labels) → value."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return parse(body.decode())


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(found: Samples, name: str) -> dict[str, float]:
    """One-label series of a metric: label value → sample value."""
    return {
        labels[0][1]: value
        for (n, labels), value in found.items()
        if n == name and len(labels) == 1
    }


def volume(
    name: str, free: int | None, headroom: float | None, available: bool = True
) -> VolumeHealth:
    return VolumeHealth(
        name,
        "ok" if available else "missing",
        "",
        available,
        None if free is None else 10 * free,
        free,
        headroom,
    )


def camera(name: str, state: str, last_ms: int | None, backlog: float = 0.0) -> CameraHealth:
    return CameraHealth(name, state, last_ms, 0, backlog)


def test_gauges_follow_the_health_snapshot_and_counters_add_up() -> None:
    m = Metrics(start_time_s=1_700_000_000.0)
    m.segment_written("door", 1000)
    m.segment_written("door", 500)
    m.segment_written("yard", 7)
    m.purged("max_days", 300)
    m.purged("pressure:hot", 20)  # the volume is not part of the label
    m.purged("pressure:big", 5)
    m.purge_succeeded(1_700_000_123_456)
    now = 1_700_000_200_000
    m.observe(
        Health(
            now,
            (volume("hot", 5_000, 7200.5), volume("big", 9_000, None)),
            (camera("door", "recording", now - 3000, 12.5), camera("yard", "offline", None)),
            legal_holds_pending=2,
        ),
        {"camera_offline": 1, "volume_low": 2},
    )
    found = samples(m)
    assert found[("ccvault_legal_holds_pending", ())] == 2

    assert found[("ccvault_build_info", (("version", __version__),))] == 1
    assert found[("ccvault_start_time_seconds", ())] == 1_700_000_000.0
    assert series(found, "ccvault_segments_written_total") == {"door": 2, "yard": 1}
    assert series(found, "ccvault_bytes_written_total") == {"door": 1500, "yard": 7}
    purged = series(found, "ccvault_purged_bytes_total")
    assert purged == {**dict.fromkeys(PURGE_RULES, 0.0), "max_days": 300, "pressure": 25}
    assert found[("ccvault_last_purge_success_timestamp_seconds", ())] == 1_700_000_123.456
    assert series(found, "ccvault_volume_free_bytes") == {"hot": 5000, "big": 9000}
    assert series(found, "ccvault_volume_total_bytes") == {"hot": 50_000, "big": 90_000}
    assert series(found, "ccvault_volume_available") == {"hot": 1, "big": 1}
    assert series(found, "ccvault_volume_headroom_seconds") == {"hot": 7200.5}  # big: no rate
    assert series(found, "ccvault_camera_up") == {"door": 1, "yard": 0}
    assert series(found, "ccvault_camera_last_segment_timestamp_seconds") == {
        "door": (now - 3000) / 1000
    }
    assert series(found, "ccvault_motion_backlog_seconds") == {"door": 12.5, "yard": 0}
    firing = series(found, "ccvault_alert_firing")
    assert firing == {**dict.fromkeys(ALERT_DEFAULTS, 0.0), "camera_offline": 1, "volume_low": 2}

    # Next snapshot: yard is gone, big went missing (no space known), hot lost its rate,
    # the alerts cleared; a new camera's counters start at 0.
    m.observe(
        Health(
            now + 10_000,
            (volume("hot", 4_000, None), volume("big", None, None, False)),
            (camera("door", "stalled", now + 5000), camera("gate", "connecting", None)),
        ),
        {},
    )
    found = samples(m)
    assert series(found, "ccvault_volume_free_bytes") == {"hot": 4000}
    assert series(found, "ccvault_volume_available") == {"hot": 1, "big": 0}
    assert series(found, "ccvault_volume_headroom_seconds") == {}
    assert series(found, "ccvault_camera_up") == {"door": 0, "gate": 0}
    assert series(found, "ccvault_camera_last_segment_timestamp_seconds") == {
        "door": (now + 5000) / 1000
    }
    assert series(found, "ccvault_motion_backlog_seconds") == {"door": 0, "gate": 0}
    assert series(found, "ccvault_alert_firing") == dict.fromkeys(ALERT_DEFAULTS, 0.0)
    # Counters keep what was counted (yard's too: a counter never goes back).
    assert series(found, "ccvault_segments_written_total") == {"door": 2, "yard": 1, "gate": 0}


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.segment_written("door", 10)
    assert series(samples(b), "ccvault_segments_written_total") == {}
    assert series(samples(a), "ccvault_segments_written_total") == {"door": 1}


# The route, over real HTTP (tests/api_peer.py).


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])


@pytest.fixture
def api(config: Path) -> Iterator[Api]:
    with serve(config) as running:
        yield running


def test_metrics_need_a_signed_in_user_unless_public(api: Api, tmp_path: Path) -> None:
    api.ctx.metrics = Metrics()
    api.ctx.metrics.segment_written("door", 42)
    anonymous = api.client(None).get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert (
        api.client(None)
        .get("/metrics", headers={"Authorization": "Bearer not-a-token"})
        .status_code
        == 401
    )
    for role in ("viewer", "admin"):
        r = api.client(role).get("/metrics")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        found = parse(r.text)
        assert found[("ccvault_segments_written_total", (("camera", "door"),))] == 1
        assert found[("ccvault_bytes_written_total", (("camera", "door"),))] == 42
    # Not part of the JSON API's schema.
    schema = api.client("viewer").get("/api/openapi.json")
    assert schema.status_code == 200 and "/metrics" not in schema.json()["paths"]
    # A process that collects no metrics says so.
    api.ctx.metrics = None
    r = api.client("viewer").get("/metrics")
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
    assert api.client(None).get("/metrics").status_code == 401  # still nothing for strangers


def test_metrics_public_needs_no_credentials(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    text = config.read_text()
    assert text.count("[http]\n") == 1
    config.write_text(text.replace("[http]\n", "[http]\nmetrics_public = true\n"))
    with serve(config) as api:
        assert api.ctx.config.http.metrics_public
        api.ctx.metrics = Metrics()
        r = api.client(None).get("/metrics")
        assert r.status_code == 200, r.text
        assert ("ccvault_build_info", (("version", __version__),)) in parse(r.text)
        assert api.client("viewer").get("/metrics").status_code == 200
        assert api.client(None).get("/api/me").status_code == 401  # only /metrics is public


# The counters from the real hooks: SegmentStore.add and the retention executor.


def test_ingest_and_retention_move_the_counters_by_exactly_what_they_did(tmp_path: Path) -> None:
    config_path = write_config(
        tmp_path,
        [
            {"name": "door", "url": "demo://", "enabled": False},
            {"name": "yard", "url": "demo://", "enabled": False},
        ],
        volumes=[
            {
                "name": "hot",
                "path": str(tmp_path / "hot"),
                "role": "hot",
                "reserve_free_bytes": 0,
                "reserve_free_percent": 0,
            }
        ],
    )
    # yard (the last [[cameras]]) has a quota that everything past min_days exceeds.
    config_path.write_text(
        config_path.read_text() + "\n[cameras.retention]\nmax_bytes = 1\nmin_days = 2\n"
    )
    config = load(config_path).config
    clock = SystemClock()
    writer = CatalogWriter(config.catalog_target, audit_log(config))
    metrics = Metrics()
    try:
        volumes = open_volumes(config, writer, clock.wall_ms())
        store = SegmentStore(writer, lambda: volumes, clock, metrics=metrics)
        src = clip(tmp_path / "cache")
        media = probe(src)
        now = clock.wall_ms()
        # (camera, start, activity, the rule expected to delete it; None: kept)
        plan = [
            ("door", now - 40 * DAY_MS, False, "max_days"),
            ("door", now - 20 * DAY_MS, False, "continuous_days"),
            ("door", now - 20 * DAY_MS + HOUR_MS, True, None),  # motion_days: 31
            ("door", now - HOUR_MS, False, None),
            ("yard", now - 5 * DAY_MS, False, "max_bytes:camera"),
            ("yard", now - 4 * DAY_MS, False, "max_bytes:camera"),
            ("yard", now - DAY_MS, False, None),
        ]  # inside yard's min_days
        sizes: dict[int, int] = {}
        for cam, start, activity, _rule in plan:
            tmp = tmp_path / "ingest.mp4"
            shutil.copyfile(src, tmp)
            stored = store.add(
                tmp, cam, start, start + media.duration_ms, media, sha256_file(tmp), "imported"
            )
            assert stored.outcome == "ingested" and stored.segment_id is not None
            sizes[stored.segment_id] = stored.path.stat().st_size
            with writer.transaction() as conn:
                conn.execute(
                    "UPDATE segments SET analysis = 1, activity = ? WHERE id = ?",
                    (int(activity), stored.segment_id),
                )
        # The same footage again is a duplicate: nothing new was written.
        tmp = tmp_path / "ingest.mp4"
        shutil.copyfile(src, tmp)
        again = store.add(
            tmp,
            "door",
            plan[0][1],
            plan[0][1] + media.duration_ms,
            media,
            sha256_file(tmp),
            "imported",
        )
        assert again.outcome == "duplicate"
        ids = list(sizes)
        found = samples(metrics)
        assert series(found, "ccvault_segments_written_total") == {"door": 4, "yard": 3}
        assert series(found, "ccvault_bytes_written_total") == {
            "door": sum(sizes[i] for i in ids[:4]),
            "yard": sum(sizes[i] for i in ids[4:]),
        }
        assert set(series(found, "ccvault_purged_bytes_total").values()) == {0}

        executor = Executor(
            writer,
            lambda: volumes,
            clock.wall_ms,
            ffmpeg_binary(config),
            actor="test",
            metrics=metrics,
        )
        with writer.reader() as conn:
            outcome = run_pass(conn, config, volumes, executor, clock.wall_ms())
        expected: dict[str, int] = dict.fromkeys(PURGE_RULES, 0)
        for seg_id, (_cam, _start, _activity, rule) in zip(ids, plan, strict=True):
            if rule is not None:
                expected[rule] += sizes[seg_id]
        assert outcome.deleted == 4 and outcome.failed == 0
        assert outcome.deleted_bytes == sum(expected.values())
        assert series(samples(metrics), "ccvault_purged_bytes_total") == expected

        # Spool leftovers past the ceiling count under their own rule.
        leftover = tmp_path / "hot" / ".spool" / "door" / "1" / "000001.mp4"
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"x" * 14)
        remove_leftovers(executor, [{"spool_file": str(leftover), "bytes": 14}])
        assert not leftover.exists()
        expected["leftovers"] = 14
        assert series(samples(metrics), "ccvault_purged_bytes_total") == expected
        # A second pass finds nothing more to do and counts nothing.
        with writer.reader() as conn:
            assert run_pass(conn, config, volumes, executor, clock.wall_ms()).deleted == 0
        assert series(samples(metrics), "ccvault_purged_bytes_total") == expected
    finally:
        writer.close()


def test_without_metrics_the_hooks_are_inert(tmp_path: Path) -> None:
    """The CLI builds SegmentStore and Executor without metrics; that must keep working."""
    config_path = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    config = load(config_path).config
    clock = SystemClock()
    writer = CatalogWriter(config.catalog_target, audit_log(config))
    try:
        volumes = open_volumes(config, writer, clock.wall_ms())
        src = clip(tmp_path / "cache")
        tmp = tmp_path / "ingest.mp4"
        shutil.copyfile(src, tmp)
        media = probe(tmp)
        start = int(time.time() * 1000) - 40 * DAY_MS
        stored = SegmentStore(writer, lambda: volumes, clock).add(
            tmp, "door", start, start + media.duration_ms, media, sha256_file(tmp), "imported"
        )
        assert stored.outcome == "ingested"
        executor = Executor(writer, lambda: volumes, clock.wall_ms, ffmpeg_binary(config))
        with writer.reader() as conn:
            assert run_pass(conn, config, volumes, executor, clock.wall_ms()).deleted == 1
    finally:
        writer.close()
