"""The alert rules, without waiting: the state machine, each condition, the manager's record
in the catalog across a restart, the audit chain's incremental check, the clock flag."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from ccvault.access import rules
from ccvault.alerts.book import AlertBook, Observation
from ccvault.alerts.conditions import CHECKS, evaluate
from ccvault.alerts.dispatcher import Dispatcher
from ccvault.alerts.manager import AlertManager
from ccvault.alerts.model import FIRING, RESOLVED, Alert
from ccvault.catalog import db, queries
from ccvault.catalog.audit import AuditLog
from ccvault.catalog.audit_verify import Verifier
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.alerts import ALERT_DEFAULTS, AlertsConfig
from ccvault.config.model import Config
from ccvault.config.secrets import check_secrets, read_secret
from ccvault.errors import ConfigError
from ccvault.host.events import Event
from ccvault.storage.volumes import Blocked
from ccvault.views.health import CameraHealth, Health, VolumeHealth, clock_synced, status_line

MIN_MS = 60_000
HOUR_S = 3600


def settings(**tables: dict) -> AlertsConfig:
    return AlertsConfig.model_validate(tables)


def book(cfg: AlertsConfig | None = None) -> AlertBook:
    cfg = cfg or settings()
    return AlertBook(cfg.settings)


def offline(camera: str = "door") -> Observation:
    return Observation("camera_offline", {"camera": camera}, f"camera {camera} is offline")


def kinds(changes: list) -> list[tuple[str, str]]:
    return [(c.kind, c.alert.status) for c in changes]


def test_a_condition_fires_after_for_seconds_and_resolves_once() -> None:
    b = book(settings(camera_offline={"for_seconds": 60}))
    assert b.update([offline()], 0) == []  # pending
    assert b.update([offline()], 59_999) == []
    [fired] = b.update([offline()], 60_000)
    assert (fired.kind, fired.alert.status, fired.alert.starts_ms) == ("fired", FIRING, 60_000)
    assert fired.alert.severity == "critical" and fired.alert.labels == {"camera": "door"}
    assert b.update([offline()], 61_000) == []
    [resolved] = b.update([], 62_000)
    assert (resolved.kind, resolved.alert.status) == ("resolved", RESOLVED)
    assert resolved.alert.ends_ms == 62_000 and resolved.alert.starts_ms == 60_000
    assert b.update([], 63_000) == []


def test_a_blip_shorter_than_for_seconds_sends_nothing() -> None:
    b = book(settings(camera_offline={"for_seconds": 60}))
    assert b.update([offline()], 0) == []
    assert b.update([], 30_000) == []
    assert b.update([offline()], 40_000) == [], "the for-timer starts again"
    assert b.update([offline()], 99_000) == []
    assert kinds(b.update([offline()], 100_000)) == [("fired", FIRING)]


def test_renotify_interval_and_zero_means_never() -> None:
    b = book(settings(camera_offline={"renotify_minutes": 30}))
    assert kinds(b.update([offline()], 0)) == [("fired", FIRING)]
    assert b.update([offline()], 30 * MIN_MS - 1) == []
    assert kinds(b.update([offline()], 30 * MIN_MS)) == [("renotified", FIRING)]
    assert b.update([offline()], 59 * MIN_MS) == []
    assert kinds(b.update([offline()], 60 * MIN_MS)) == [("renotified", FIRING)]
    never = book(settings(camera_offline={"renotify_minutes": 0}))
    never.update([offline()], 0)
    assert never.update([offline()], 10_000 * MIN_MS) == []


def test_severity_change_is_sent_at_once_and_instances_are_separate() -> None:
    b = book(settings(volume_low={"for_seconds": 0}))
    low = Observation("volume_low", {"volume": "hot"}, "low")
    assert [c.alert.severity for c in b.update([low, offline("a"), offline("b")], 0)] == [
        "warning",
        "critical",
        "critical",
    ]
    changes = b.update([replace(low, severity="critical"), offline("a")], 1000)
    assert sorted(kinds(changes)) == [("escalated", FIRING), ("resolved", RESOLVED)]
    assert {c.alert.labels.get("camera") for c in changes if c.kind == "resolved"} == {"b"}


def test_disabled_alerts_never_fire_and_a_firing_one_resolves() -> None:
    enabled = {"value": True}
    cfg_on, cfg_off = settings(), settings(camera_offline={"enabled": False})
    b = AlertBook(lambda name: (cfg_on if enabled["value"] else cfg_off).settings(name))
    assert kinds(b.update([offline()], 0)) == [("fired", FIRING)]
    enabled["value"] = False  # a reload turned it off
    assert kinds(b.update([offline()], 1000)) == [("resolved", RESOLVED)]
    assert b.update([offline()], 2000) == []


def test_every_condition_has_a_check_and_each_reads_the_snapshot() -> None:
    names = {c.__name__ for c in CHECKS} - {"access_rules"} | set(rules.RULES)
    assert names == {n for n, s in ALERT_DEFAULTS.items() if s.kind == "condition"}
    cfg = settings()
    hot = VolumeHealth("hot", "available", "", True, 100, 50, 30 * HOUR_S)
    quiet = Health(0, (hot,), (CameraHealth("door", "recording", 0, 0, 0),), clock_synced=True)
    assert evaluate(quiet, cfg) == []
    trouble = Health(
        0,
        (
            replace(hot, headroom_seconds=23 * HOUR_S),
            VolumeHealth("arch", "unavailable", "identity file missing", False, None, None, None),
            replace(hot, name="cold", headroom_seconds=3 * HOUR_S),
        ),
        (
            CameraHealth("door", "offline", None, 0, 0),
            CameraHealth("yard", "recording", 0, 7, 31 * 60),
            CameraHealth("gate", "connecting", 0, 6, 0),
            CameraHealth("lens", "failing", 0, 0, 0),
        ),
        write_errors={"hot": "Input/output error"},
        blocked={"cold": Blocked(need=5, foreign=0, held=5, floor=0)},
        at_risk={"days": 3.5, "min_days": 7, "cameras": {"door": {"at_risk": True}}},
        catalog_error="disk I/O error",
        audit_error="line 7: hash mismatch",
        corrupt={"yard": 2},
        clock_synced=False,
        clock_unknown="nothing tells",
    )
    found = {(o.name, tuple(o.labels.items())): o for o in evaluate(trouble, cfg)}
    assert set(found) == {
        ("volume_low", (("volume", "hot"),)),
        ("volume_low", (("volume", "cold"),)),
        ("volume_unavailable", (("volume", "arch"),)),
        ("volume_unavailable", (("volume", "hot"),)),
        ("held_footage_blocking", (("volume", "cold"),)),
        ("retention_at_risk", ()),
        ("camera_offline", (("camera", "door"),)),
        ("recording_failed", (("camera", "lens"),)),
        ("camera_flapping", (("camera", "yard"),)),
        ("analysis_backlog", (("camera", "yard"),)),
        ("catalog_error", ()),
        ("audit_chain_broken", ()),
        ("segment_corrupt", (("camera", "yard"),)),
        ("clock_unsynchronised", ()),
        ("clock_unchecked", ()),
    }
    assert found[("volume_low", (("volume", "hot"),))].severity is None  # configured: warning
    assert found[("volume_low", (("volume", "cold"),))].severity == "critical"  # < 4 h
    assert "identity file missing" in found[("volume_unavailable", (("volume", "arch"),))].summary
    assert "write error" in found[("volume_unavailable", (("volume", "hot"),))].summary


def test_the_manager_records_sends_and_carries_alerts_across_a_restart(
    tmp_path: Path, catalog_target: db.Target
) -> None:
    sent: list[Alert] = []

    class Channel:
        name = "list"

        def send(self, alert: Alert) -> None:
            sent.append(alert)

    writer = CatalogWriter(catalog_target)
    cfg = settings()
    door_down = Health(0, (), (CameraHealth("door", "offline", None, 0, 0),))
    door_up = replace(door_down, cameras=(CameraHealth("door", "recording", 0, 0, 0),))

    def manager(now_ms: int, grace_s: float = 0) -> AlertManager:
        dispatcher = Dispatcher([Channel()])
        dispatcher.start()
        return AlertManager(cfg, writer, dispatcher, now_ms, grace_s)

    first = manager(0)
    first.evaluate(door_down)
    first.raise_event(Event("export_failed", "export 3 failed", {"camera": "door"}), 500)
    first.dispatcher.wait_idle(5)
    first.dispatcher.stop()
    assert [(a.name, a.status, a.event) for a in sent] == [
        ("camera_offline", FIRING, False),
        ("export_failed", FIRING, True),
    ]
    with writer.reader() as conn:
        rows = queries.alerts(conn, 0)
    assert [(r.name, r.resolved_ms, r.event) for r in rows] == [
        ("export_failed", 500, True),
        ("camera_offline", None, False),
    ]

    # Restarted: still offline during the grace period, nothing is sent again; then it is
    # seen recording and resolves with its original start.
    second = manager(10_000, grace_s=20)
    assert second.firing_counts() == {"camera_offline": 1}
    assert second.evaluate(replace(door_up, now_ms=15_000)) == []
    [change] = second.evaluate(replace(door_up, now_ms=31_000))
    assert change.kind == "resolved" and change.alert.starts_ms == 0
    second.dispatcher.wait_idle(5)
    second.dispatcher.stop()
    assert [(a.name, a.status) for a in sent[2:]] == [("camera_offline", RESOLVED)]
    with writer.reader() as conn:
        assert [r.resolved_ms for r in queries.alerts(conn, 0) if not r.event] == [31_000]
    writer.close()


def test_the_audit_chain_is_checked_incrementally(
    tmp_path: Path, catalog_target: db.Target
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    writer = CatalogWriter(catalog_target, log)

    def append(i: int) -> None:
        with writer.transaction():
            writer.audit("t", "x", f"o{i}", {"i": i}, i)

    for i in range(5):
        append(i)
    verifier = Verifier(log, writer.audit_chain.head)
    report = verifier.check()
    assert report.ok and report.records == 5 and report.tail_seq == 5
    for i in range(5, 8):
        append(i)
    report = verifier.check()
    assert report.ok and report.records == 8, "the new lines only, counted on"
    assert verifier.check().ok, "nothing new: still intact"

    lines = log.path.read_text().splitlines(keepends=True)
    edited = json.loads(lines[7])
    edited["details"] = {"i": 99}
    log.path.write_text("".join(lines[:7]) + json.dumps(edited) + "\n")
    report = verifier.check()  # the last line read changed: read again from the start
    assert not report.ok and [(p.kind, p.line) for p in report.open] == [("broken", 8)]
    assert not verifier.check().ok, "stays broken"

    log.path.write_text("".join(lines[:3]))  # truncated below what was verified
    report = verifier.check()
    assert [(p.kind, p.seq) for p in report.open] == [("tail_cut", 4)]
    log.path.write_text("".join(lines))
    assert verifier.check().ok
    forged = json.loads(lines[2])
    forged["actor"] = "mallory"
    log.path.write_text("".join(lines[:2]) + json.dumps(forged) + "\n" + "".join(lines[3:]))
    report = Verifier(log, writer.audit_chain.head).check()
    assert [(p.kind, p.line) for p in report.open] == [("broken", 3)]
    writer.close()


def test_clock_synchronisation_is_read_from_timesyncd_without_a_syscall(tmp_path: Path) -> None:
    timesync = tmp_path / "timesync"
    timesync.mkdir()
    assert clock_synced("auto", timesync) is False
    (timesync / "synchronized").touch()
    assert clock_synced("auto", timesync) is True
    assert clock_synced("timesyncd", tmp_path / "absent") is False
    assert clock_synced("off", timesync) is None


def test_status_line_names_cameras_headroom_and_alerts() -> None:
    snapshot = Health(
        0,
        (
            VolumeHealth("hot", "available", "", True, 1, 1, 2.5 * 86_400),
            VolumeHealth("arch", "unavailable", "x", False, None, None, None),
        ),
        (
            CameraHealth("a", "recording", 0, 0, 0),
            CameraHealth("b", "offline", 0, 0, 0),
            CameraHealth("c", "disabled", 0, 0, 0),
        ),
    )
    assert status_line(snapshot, {"camera_offline": 1}) == (
        "recording 1/2 cameras; headroom hot 2.5 d; unavailable: arch; "
        "1 alert(s) firing: camera_offline"
    )


def test_alert_config_keeps_each_alerts_defaults_and_rejects_nonsense() -> None:
    cfg = settings(volume_low={"renotify_minutes": 5})
    assert (cfg.volume_low.for_seconds, cfg.volume_low.renotify_minutes) == (300, 5)
    assert cfg.camera_offline.severity == "critical"
    with pytest.raises(ValidationError, match=r"premature_deletion\.for_seconds"):
        settings(premature_deletion={"for_seconds": 5})
    with pytest.raises(ValidationError, match="headroom_critical_hours"):
        AlertsConfig.model_validate({"headroom_critical_hours": 48})
    with pytest.raises(ValidationError, match="camera_ofline"):
        AlertsConfig.model_validate({"camera_ofline": {}})


def test_secrets_come_from_files_or_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "smtp").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_secret(None, "smtp") == "s3cret"
    assert read_secret(tmp_path / "smtp", None) == "s3cret"
    raw = {
        "storage": {
            "catalog": str(tmp_path / "c.sqlite"),
            "volumes": [{"name": "hot", "path": str(tmp_path / "hot")}],
        },
        "cameras": [
            {"name": "door", "url": "rtsp://viewer@192.0.2.1/s", "password_credential": "door"}
        ],
        "alerts": {
            "email": {
                "host": "mail",
                "from": "a@b.c",
                "to": ["d@e.f"],
                "username": "u",
                "password_credential": "smtp",
            }
        },
    }
    config = Config.model_validate(raw)
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.password_credential: cannot read"):
        check_secrets(config, tmp_path / "x.toml", credentials=True)
    (tmp_path / "door").write_text("pw")
    check_secrets(config, tmp_path / "x.toml", credentials=True)
    assert config.cameras[0].source_url() == "rtsp://viewer:pw@192.0.2.1/s"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    check_secrets(config, tmp_path / "x.toml", credentials=False)  # outside the unit
    with pytest.raises(ConfigError, match=r"alerts\.email\.password_credential"):
        (tmp_path / "door").unlink()
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "none"))
        check_secrets(
            Config.model_validate({**raw, "cameras": []}), tmp_path / "x.toml", credentials=True
        )
