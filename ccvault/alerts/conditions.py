"""Which alert conditions hold in a health snapshot: pure, one function per condition."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ccvault.alerts.book import Observation
from ccvault.config.alerts import AlertsBase
from ccvault.recorder.states import CameraState
from ccvault.timefmt import utc_text
from ccvault.views.health import Health

HOUR_S = 3600

Check = Callable[[Health, AlertsBase], Iterator[Observation]]


def volume_low(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    for v in health.volumes:
        if not v.available or v.headroom_seconds is None:
            continue
        hours = v.headroom_seconds / HOUR_S
        if hours >= cfg.headroom_warning_hours:
            continue
        # The configured severity is the warning level; under the critical threshold it is
        # always critical, so an operator cannot mute the last hours by accident.
        severity = "critical" if hours < cfg.headroom_critical_hours else None
        yield Observation(
            "volume_low",
            {"volume": v.name},
            f"volume {v.name}: {hours:.1f} h of headroom at the current write rate",
            severity,
            {"headroom_hours": f"{hours:.1f}", "free_bytes": str(v.free_bytes)},
        )


def volume_unavailable(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    for v in health.volumes:
        error = health.write_errors.get(v.name)
        if v.available and error is None:
            continue
        why = v.reason or v.state if not v.available else f"write error: {error}"
        yield Observation(
            "volume_unavailable",
            {"volume": v.name},
            f"volume {v.name} is unavailable: {why}",
            None,
            {"state": v.state if not v.available else "write_error"},
        )


def retention_at_risk(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    report = health.at_risk
    if report:
        cameras = sorted(n for n, c in report["cameras"].items() if c["at_risk"])
        yield Observation(
            "retention_at_risk",
            {},
            f"storage holds {report['days']} days at today's rate, less than "
            f"min_days {report['min_days']}",
            None,
            {
                "forecast_days": str(report["days"]),
                "min_days": str(report["min_days"]),
                "cameras": ",".join(cameras),
            },
        )


def held_footage_blocking(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    for volume, need in sorted(health.blocked.items()):
        yield Observation(
            "held_footage_blocking",
            {"volume": volume},
            f"volume {volume} is full of footage that may not be deleted "
            "(holds, pins, min_days); new footage goes elsewhere",
            None,
            {"need_bytes": str(need)},
        )


def camera_offline(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    for cam in health.cameras:
        if cam.state == CameraState.OFFLINE:
            last = utc_text(cam.last_segment_end_ms) if cam.last_segment_end_ms else "never"
            yield Observation(
                "camera_offline",
                {"camera": cam.name},
                f"camera {cam.name} is offline (last footage: {last})",
                None,
                {"last_footage": last},
            )


def camera_flapping(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    for cam in health.cameras:
        if cam.reconnects_last_hour > cfg.flap_reconnects_per_hour:
            yield Observation(
                "camera_flapping",
                {"camera": cam.name},
                f"camera {cam.name} reconnected {cam.reconnects_last_hour} times in the last hour",
                None,
                {"reconnects_last_hour": str(cam.reconnects_last_hour)},
            )


def analysis_backlog(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    for cam in health.cameras:
        minutes = cam.backlog_seconds / 60
        if minutes > cfg.backlog_minutes:
            yield Observation(
                "analysis_backlog",
                {"camera": cam.name},
                f"motion analysis of camera {cam.name} is {minutes:.0f} minutes behind",
                None,
                {"backlog_minutes": f"{minutes:.0f}"},
            )


def catalog_error(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    if health.catalog_error:
        yield Observation("catalog_error", {}, f"catalog error: {health.catalog_error}")


def audit_chain_broken(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    if health.audit_error:
        yield Observation(
            "audit_chain_broken", {}, f"the audit log's hash chain is broken: {health.audit_error}"
        )


def segment_corrupt(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    for camera, count in sorted(health.corrupt.items()):
        yield Observation(
            "segment_corrupt",
            {"camera": camera},
            f"camera {camera}: {count} corrupt segment(s) found in the last "
            "24 h (quarantined or failed the re-hash)",
            None,
            {"segments_24h": str(count)},
        )


def clock_unsynchronised(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    if health.clock_synced is False:
        yield Observation(
            "clock_unsynchronised",
            {},
            "the host clock is not NTP-synchronised; footage timestamps are evidence",
        )


def access_rules(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    """The rooms' rules (access.rules): each finding, as found."""
    for finding in health.access:
        yield Observation(finding.rule, finding.labels, finding.summary, None, finding.details)


CHECKS: tuple[Check, ...] = (
    volume_low,
    volume_unavailable,
    retention_at_risk,
    held_footage_blocking,
    camera_offline,
    camera_flapping,
    analysis_backlog,
    catalog_error,
    audit_chain_broken,
    segment_corrupt,
    clock_unsynchronised,
    access_rules,
)


def evaluate(health: Health, cfg: AlertsBase) -> list[Observation]:
    return [obs for check in CHECKS for obs in check(health, cfg)]
