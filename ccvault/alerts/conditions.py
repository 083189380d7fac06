"""Which alert conditions hold in a health snapshot: pure, one function per condition."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ccvault.alerts.book import Observation
from ccvault.config.alerts import AlertsBase
from ccvault.recorder.states import CameraState
from ccvault.storage.volumes import Blocked
from ccvault.text import size_text
from ccvault.timefmt import utc_text
from ccvault.views.health import Health

HOUR_S = 3600

Check = Callable[[Health, AlertsBase], Iterator[Observation]]


def volume_low(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    for v in health.volumes:
        if v.name in health.blocked:
            yield _stuck_under_reserve(v.name, health.blocked[v.name])
            continue
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


def _stuck_under_reserve(volume: str, why: Blocked) -> Observation:
    """volume_low, critical: pressure took everything it may, and the volume is still under
    its reserve. Says how much of the filesystem is not footage: when that alone would cover
    the shortfall, another program is filling the volume."""
    if why.foreign >= why.need:
        cause = (
            f"{size_text(why.foreign)} on its filesystem is not footage: something other than "
            "ccvault's footage is filling it"
        )
    else:
        cause = f"what is left may not be deleted ({size_text(why.foreign)} is not footage)"
    return Observation(
        "volume_low",
        {"volume": volume},
        f"volume {volume} stays {size_text(why.need)} under its reserve after disk pressure "
        f"deleted all it may; {cause}. Kept: each camera's newest footage "
        f"(pressure_floor_hours, {size_text(why.floor)}) and held footage ({size_text(why.held)}); "
        "new footage goes to another volume if one has room",
        "critical",
        {
            "need_bytes": str(why.need),
            "foreign_bytes": str(why.foreign),
            "floor_bytes": str(why.floor),
            "held_bytes": str(why.held),
        },
        at_once=True,
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
    for volume, why in sorted(health.blocked.items()):
        if why.held:
            yield Observation(
                "held_footage_blocking",
                {"volume": volume},
                f"volume {volume} stays under its reserve with {size_text(why.held)} of held or "
                "pinned footage that may not be deleted; new footage goes elsewhere",
                None,
                {"need_bytes": str(why.need), "held_bytes": str(why.held)},
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


def recording_failed(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    for cam in health.cameras:
        if cam.state == CameraState.FAILING:
            last = utc_text(cam.last_segment_end_ms) if cam.last_segment_end_ms else "never"
            yield Observation(
                "recording_failed",
                {"camera": cam.name},
                f"camera {cam.name}: frames arrive but no segment is being stored (spool, "
                f"volume or catalog refuse it; see the other alerts); last stored footage: {last}",
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


def node_offline(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    """Another node stopped beating: its cameras may be unrecorded, its footage unreachable."""
    for node in health.nodes:
        if not node.up:
            since = utc_text(node.last_seen_ms)
            yield Observation(
                "node_offline",
                {"node": node.name},
                f"node {node.name} is down since {since} (no heartbeat since): its footage "
                "is unavailable and its cameras are not recorded by it",
                None,
                {"last_seen": since},
            )


def catalog_error(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    if health.catalog_error:
        yield Observation("catalog_error", {}, f"catalog error: {health.catalog_error}")


def catalog_unreachable(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    if health.catalog_unreachable:
        waiting = health.spool_backlog
        yield Observation(
            "catalog_unreachable",
            {},
            f"{health.catalog_unreachable}; recording goes on, footage waits in the spool",
            None,
            {"spool_backlog_segments": str(waiting.segments)},
        )


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


def clock_unchecked(health: Health, cfg: AlertsBase) -> Iterator[Observation]:
    if health.clock_unknown:
        yield Observation("clock_unchecked", {}, health.clock_unknown)


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
    recording_failed,
    camera_flapping,
    analysis_backlog,
    node_offline,
    catalog_error,
    catalog_unreachable,
    audit_chain_broken,
    segment_corrupt,
    clock_unsynchronised,
    clock_unchecked,
    access_rules,
)


def evaluate(health: Health, cfg: AlertsBase) -> list[Observation]:
    return [obs for check in CHECKS for obs in check(health, cfg)]
