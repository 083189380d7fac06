"""Prometheus metrics for `GET /metrics`: counters fed by ingest and retention as things
happen, gauges set from the daemon's health snapshot (`ccvault.views.health`), so /metrics, the
alerts and the status line agree.

Each `Metrics` has a registry of its own (never prometheus_client's global one), so tests and
several daemons in one process do not collide. Series of volumes and cameras that leave the
snapshot are removed, not left at their last value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from ccvault import __version__
from ccvault.config.alerts import ALERT_DEFAULTS
from ccvault.views.health import Health

try:  # prometheus-client >= 0.21 names it; its CONTENT_TYPE_LATEST is 1.0.0 there
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE
except ImportError:  # pragma: no cover - older clients: the latest *is* 0.0.4
    from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE

RECORDING = "recording"  # CameraState.RECORDING: the only state that counts as up
# Every rule a deletion can carry (planner.ROUTINE_RULES, over_quota, pressure.Space.need),
# with `pressure:<volume>` folded into `pressure`; `leftovers`: quarantined files and spool
# leftovers past the privacy ceiling. Created at 0 so increase() works from the first purge.
PURGE_RULES = (
    "max_days",
    "motion_days",
    "continuous_days",
    "max_bytes:camera",
    "max_bytes:volume",
    "pressure",
    "leftovers",
)


def rule_label(rule: str) -> str:
    """The `rule` label of a deletion: the planner's rule, without a volume name."""
    return "pressure" if rule.startswith("pressure:") else rule


class Metrics:
    def __init__(self, version: str = __version__, start_time_s: float | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._lock = threading.Lock()
        self._present: dict[Gauge, set[str]] = {}  # label values each gauge got last time

        info = Gauge(
            "ccvault_build_info", "Always 1; the version as a label.", ["version"], registry=r
        )
        info.labels(version).set(1)
        started = Gauge(
            "ccvault_start_time_seconds", "When the daemon started (Unix time).", registry=r
        )
        started.set(time.time() if start_time_s is None else start_time_s)

        self.segments_written = Counter(
            "ccvault_segments_written_total",
            "Segments ingested into the catalog.",
            ["camera"],
            registry=r,
        )
        self.bytes_written = Counter(
            "ccvault_bytes_written_total",
            "Bytes of segments ingested into the catalog.",
            ["camera"],
            registry=r,
        )
        self.purged_bytes = Counter(
            "ccvault_purged_bytes_total",
            "Bytes deleted by retention, by the rule that decided it.",
            ["rule"],
            registry=r,
        )
        for rule in PURGE_RULES:
            self.purged_bytes.labels(rule)
        self.access_events = Counter(
            "ccvault_access_events_total",
            "Access events received, by source kind (http, mqtt, file) and outcome "
            "(accepted, duplicate, rejected).",
            ["source", "outcome"],
            registry=r,
        )
        self.last_purge_success = Gauge(
            "ccvault_last_purge_success_timestamp_seconds",
            "When the last retention pass completed without failure (Unix time; 0: never).",
            registry=r,
        )

        self.volume_free = Gauge(
            "ccvault_volume_free_bytes", "Free bytes on the volume.", ["volume"], registry=r
        )
        self.volume_total = Gauge(
            "ccvault_volume_total_bytes", "Size of the volume in bytes.", ["volume"], registry=r
        )
        self.volume_available = Gauge(
            "ccvault_volume_available",
            "1 when the volume can be read and written.",
            ["volume"],
            registry=r,
        )
        self.volume_headroom = Gauge(
            "ccvault_volume_headroom_seconds",
            "How long the volume lasts at the current write rate (absent until there is a rate).",
            ["volume"],
            registry=r,
        )
        self.camera_up = Gauge(
            "ccvault_camera_up", "1 when the camera is recording.", ["camera"], registry=r
        )
        self.camera_last_segment = Gauge(
            "ccvault_camera_last_segment_timestamp_seconds",
            "End of the camera's newest segment (Unix time).",
            ["camera"],
            registry=r,
        )
        self.motion_backlog = Gauge(
            "ccvault_motion_backlog_seconds",
            "Footage recorded but not yet motion-analysed.",
            ["camera"],
            registry=r,
        )
        self.alert_firing = Gauge(
            "ccvault_alert_firing",
            "Firing instances of the alert (0: not firing).",
            ["alert"],
            registry=r,
        )
        for name in ALERT_DEFAULTS:
            self.alert_firing.labels(name).set(0)
        self.catalog_reachable = Gauge(
            "ccvault_catalog_reachable",
            "1 when the catalog can be reached (0: PostgreSQL out of reach; footage waits).",
            registry=r,
        )
        self.catalog_reachable.set(1)
        self.spool_backlog = Gauge(
            "ccvault_spool_backlog_segments",
            "Finished segments waiting in the spool for the catalog (a few in normal running).",
            registry=r,
        )
        self.legal_holds_pending = Gauge(
            "ccvault_legal_holds_pending",
            "Legal hold changes an object store has not taken yet (the daemon retries them).",
            registry=r,
        )
        self.spool_backlog_oldest = Gauge(
            "ccvault_spool_backlog_oldest_timestamp_seconds",
            "End of the oldest segment waiting in the spool (Unix time; 0: none waits).",
            registry=r,
        )

    # Counters: called where it happens (SegmentStore.add, Executor, remove_leftovers).

    def segment_written(self, camera: str, nbytes: int) -> None:
        self.segments_written.labels(camera).inc()
        self.bytes_written.labels(camera).inc(nbytes)

    def purged(self, rule: str, nbytes: int) -> None:
        self.purged_bytes.labels(rule_label(rule)).inc(nbytes)

    def access_received(self, source: str, accepted: int, duplicates: int, rejected: int) -> None:
        kind = source.split(":", 1)[0]
        for outcome, n in (
            ("accepted", accepted),
            ("duplicate", duplicates),
            ("rejected", rejected),
        ):
            self.access_events.labels(kind, outcome).inc(n)

    def purge_succeeded(self, at_ms: int) -> None:
        self.last_purge_success.set(at_ms / 1000)

    # Gauges: from the health snapshot.

    def observe(self, health: Health, firing: Mapping[str, int]) -> None:
        with self._lock:
            vols = health.volumes
            self._replace(
                self.volume_free, {v.name: v.free_bytes for v in vols if v.free_bytes is not None}
            )
            self._replace(
                self.volume_total,
                {v.name: v.total_bytes for v in vols if v.total_bytes is not None},
            )
            self._replace(self.volume_available, {v.name: int(v.available) for v in vols})
            self._replace(
                self.volume_headroom,
                {v.name: v.headroom_seconds for v in vols if v.headroom_seconds is not None},
            )
            cams = health.cameras
            self._replace(self.camera_up, {c.name: int(c.state == RECORDING) for c in cams})
            self._replace(
                self.camera_last_segment,
                {
                    c.name: c.last_segment_end_ms / 1000
                    for c in cams
                    if c.last_segment_end_ms is not None
                },
            )
            self._replace(self.motion_backlog, {c.name: c.backlog_seconds for c in cams})
            for c in cams:  # counters of a camera start at 0, so rate() works from the start
                self.segments_written.labels(c.name)
                self.bytes_written.labels(c.name)
            for name in ALERT_DEFAULTS:
                self.alert_firing.labels(name).set(firing.get(name, 0))
            self.catalog_reachable.set(int(health.catalog_unreachable is None))
            waiting = health.spool_backlog
            self.spool_backlog.set(waiting.segments)
            self.spool_backlog_oldest.set((waiting.oldest_ms or 0) / 1000)
            self.legal_holds_pending.set(health.legal_holds_pending)

    def _replace(self, gauge: Gauge, values: Mapping[str, float]) -> None:
        """Set every series of a one-label gauge; remove the ones not in `values`. New values
        go in before stale ones go, so a scrape in between never sees a gap."""
        for label, value in values.items():
            gauge.labels(label).set(value)
        for label in self._present.get(gauge, set()) - set(values):
            gauge.remove(label)
        self._present[gauge] = set(values)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type (Prometheus text format 0.0.4)."""
        return generate_latest(self.registry), CONTENT_TYPE
