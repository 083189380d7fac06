"""What the daemon is made of, and how the parts are built and joined (the composition root).

`build` runs the start-up order that matters before anything records: the catalog opened and
migrated, the volumes checked, interrupted file operations (intents) and analyses recovered,
the spool reconciled. The parts come back as `Parts`; `daemon.Daemon` starts, reloads and
stops them. State lives in the part that owns it; this module only joins them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from ccvault import __version__
from ccvault.access.follow import FileFollower
from ccvault.access.log import AccessLog
from ccvault.access.mqtt import MqttSource
from ccvault.alerts.channels import build_channels
from ccvault.alerts.dispatcher import Dispatcher
from ccvault.alerts.incidents import IncidentHolds
from ccvault.alerts.manager import AlertManager
from ccvault.api.context import ApiContext
from ccvault.api.server import ApiServer
from ccvault.catalog.audit import audit_log
from ccvault.catalog.audit_checkpoints import CheckpointKind
from ccvault.catalog.writer import CatalogGone, CatalogWriter
from ccvault.config.loading import LoadedConfig
from ccvault.config.model import Config
from ccvault.config.node import HEARTBEAT_S
from ccvault.evidence.jobs import ExportJobs
from ccvault.evidence.signing import installation_key
from ccvault.host.clock import Clock
from ccvault.host.sdnotify import Notifier
from ccvault.ingest.reconcile import reconcile
from ccvault.ingest.spool import Ingestor, SpoolRouter
from ccvault.motion.scheduler import MotionScheduler, default_workers, reset_interrupted
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.recorder.live import LiveRelay
from ccvault.recorder.states import CameraState
from ccvault.recorder.supervisor import Supervisor
from ccvault.retention.executor import recover
from ccvault.retention.locks import lock_dates
from ccvault.retention.runner import RetentionRunner
from ccvault.service import jobs as timing
from ccvault.service.checks import HealthChecks
from ccvault.service.jobs import Job, Jobs, every
from ccvault.service.metrics import Metrics
from ccvault.service.node import heartbeat, start_node
from ccvault.service.publisher import Publisher
from ccvault.storage.integrity import Scrubber
from ccvault.storage.store import SegmentStore
from ccvault.storage.volumes import VolumeSet, spool_dirs

log = structlog.get_logger("ccvault.daemon")

AccessSource = FileFollower | MqttSource


@dataclass
class Footage:
    """The footage path: recorders → spool → store."""

    store: SegmentStore
    supervisor: Supervisor
    ingestor: Ingestor
    router: SpoolRouter
    live: LiveRelay  # the recorders' segment files, read as they grow for live viewers
    # Called when a camera changes state (the health check runs at once, for the alerts).
    state_changed: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class Parts:
    """Everything the daemon built, so start, reload and stop can reach it."""

    writer: CatalogWriter
    volumes: VolumeSet
    footage: Footage
    alerts: AlertManager
    incidents: IncidentHolds
    access: AccessLog
    exports: ExportJobs
    api_context: ApiContext
    api: ApiServer
    motion: MotionScheduler
    scrubber: Scrubber
    retention: RetentionRunner
    checks: HealthChecks
    jobs: Jobs
    sources: list[AccessSource] = field(default_factory=list)  # access events followed
    publisher: Publisher | None = None  # [mqtt]: ccvault's events published
    threads: dict[str, threading.Thread] = field(default_factory=dict)

    def appliers(self) -> list[Callable[[Config], None]]:
        """Who takes a reloaded config, in this order (volumes last: it re-checks disks)."""
        return [
            self.access.apply,
            self.incidents.apply,
            self.exports.apply,
            self.api_context.apply,
            self.motion.apply,
            self.scrubber.apply,
            lambda c: self.alerts.apply(c.alerts),
            self.jobs.apply,
            self.retention.apply,
            self.checks.apply,
            self.footage.router.apply,
            self.footage.supervisor.apply,
            self.volumes.apply,
        ]

    def catalog_back(self, now_ms: int) -> None:
        """The catalog the daemon opened is back at its path (restored from a backup, so
        possibly older than the disks): finish interrupted file operations, reconcile it with
        the volumes as a start-up does (footage stored since the backup is adopted, footage
        gone since is reported missing), put what fires and each camera's state on record,
        and let ingest store what waited in the spool."""
        footage = self.footage
        recovered = recover(self.writer, self.volumes.current(), lock_dates(self.volumes.config))
        self.volumes.refresh()
        self.writer.cameras.ensure(list(footage.supervisor.recorders))
        # The ingest thread stores the spool itself: two scanners of one spool would race.
        report = reconcile(
            self.writer,
            footage.store,
            self.volumes.current(),
            None,
            dry_run=False,
            daemon_running=False,
            cameras=list(footage.supervisor.recorders),
        )
        self.alerts.catalog_back(now_ms)
        footage.supervisor.announce()
        self.writer.record_event(
            "daemon",
            "catalog.reopened",
            "catalog",
            {"intents_recovered": recovered, **{k: len(v) for k, v in report.as_json().items()}},
            now_ms,
        )
        footage.ingestor.wake()
        self.exports.resume()

    def catalog_reachable(self, now_ms: int) -> None:
        """The PostgreSQL catalog answers again (the same catalog: nothing to reconcile): put
        on record what fired meanwhile and each camera's state, and let ingest store what
        waited in the spool, in order (motion analysis and retention simply find it there)."""
        try:
            self.alerts.save_pending(now_ms)
        except CatalogGone as exc:  # out of reach again: the next return tries again
            log.error("catalog.catch_up_failed", error=exc.problem)
        self.footage.supervisor.announce()
        self.footage.ingestor.wake()


@dataclass(frozen=True)
class Shared:
    """What the daemon hands every part: its clock, metrics, notifier and stop flag."""

    loaded: LoadedConfig
    clock: Clock
    metrics: Metrics
    notifier: Notifier
    stopping: threading.Event


def build(shared: Shared) -> Parts:
    config, clock = shared.loaded.config, shared.clock
    writer = CatalogWriter(
        config.catalog_target, audit_log(config), config.lock_base, config.node.name
    )
    log.info(
        "daemon.starting",
        version=__version__,
        config=str(shared.loaded.path),
        catalog=str(config.storage.catalog),
        cameras=len(config.cameras),
    )
    for warning in shared.loaded.warnings:
        log.warning("config.warning", detail=warning)
    # The key signs the audit log's checkpoints from the first record on (made at first start).
    installation_key(config.signing_key_path, writer, "daemon", clock.wall_ms())
    start_node(config, writer, shared.loaded.path, clock.wall_ms())
    writer.cameras.ensure(c.name for c in config.cameras)
    volumes = VolumeSet(
        config,
        writer,
        clock.wall_ms,
        on_return=lambda v: recover(writer, v, lock_dates(volumes.config)),
    )
    volumes.refresh()
    # Intents first: a half-done purge must finish before reconcile could adopt its file.
    recovered = recover(writer, volumes.current(), lock_dates(config))
    analyses = reset_interrupted(writer)
    writer.record_event(
        "daemon",
        "daemon.start",
        "daemon",
        {
            "version": __version__,
            "config": str(shared.loaded.path),
            "cameras": [c.name for c in config.cameras],
            "intents_recovered": recovered,
            "analyses_reset": analyses,
        },
        clock.wall_ms(),
    )
    publisher = Publisher(config.mqtt, writer) if config.mqtt is not None else None
    footage = _footage(shared, writer, volumes, publisher)
    parts = _serving(shared, writer, volumes, footage)
    parts.checks.on_catalog_back = lambda: parts.catalog_back(clock.wall_ms())
    parts.checks.on_catalog_reachable = lambda: parts.catalog_reachable(clock.wall_ms())
    parts.checks.spool_backlog = parts.footage.ingestor.backlog
    if publisher is not None:
        _publish(parts, publisher)
    return parts


def _publish(parts: Parts, publisher: Publisher) -> None:
    """Motion, alerts, visits and occupancy to MQTT, besides what each part does already."""
    parts.publisher = publisher
    parts.motion.on_spans = publisher.spans
    parts.alerts.listeners.append(publisher.alert)
    rules_now = parts.access.on_change

    def rooms_changed(rooms: set[str]) -> None:
        rules_now(rooms)
        publisher.rooms(parts.access.config, rooms)

    parts.access.on_change = rooms_changed


def _footage(
    shared: Shared, writer: CatalogWriter, volumes: VolumeSet, publisher: Publisher | None
) -> Footage:
    """Recorders, spool and store, reconciled before anything records."""
    config, clock = shared.loaded.config, shared.clock
    # A camera's frames count as footage once a segment of it is in the catalog.
    store = SegmentStore(
        writer,
        volumes.writable,
        clock,
        shared.metrics,
        on_stored=lambda camera: supervisor.segment_stored(camera),
    )
    spools = spool_dirs(config, volumes.current())
    log.info("daemon.spool", spool=str(spools.record))
    changed: list[Callable[[], None]] = []

    def save_state(camera: str, state: CameraState, since_ms: int, reason: str) -> None:
        with contextlib.suppress(CatalogGone):  # published again by `Parts.catalog_back`
            writer.cameras.set_state(camera, str(state), since_ms, reason)
        if publisher is not None:
            publisher.camera_state(camera, state, since_ms, reason)
        for poke in changed:
            poke()

    live = LiveRelay()
    supervisor = Supervisor(
        config, spools.record, clock, save_state, lambda camera: ingestor.wake(camera), live
    )
    # A segment kept durable in the spool while the catalog is out of reach is not a camera
    # failing: catalog_unreachable says what is wrong, once.
    ingestor = Ingestor(store, spools.drain, supervisor.active_runs, supervisor.segment_stored)
    reconcile(
        writer,
        store,
        volumes.current(),
        ingestor,
        dry_run=False,
        daemon_running=False,
        cameras=[c.name for c in config.cameras],
    )
    router = SpoolRouter(config, volumes, ingestor, supervisor.move_spool, spools.record)
    return Footage(store, supervisor, ingestor, router, live, changed)


def _serving(shared: Shared, writer: CatalogWriter, volumes: VolumeSet, footage: Footage) -> Parts:
    """The parts that serve and keep the footage, and the jobs that drive them."""
    config, clock, metrics = shared.loaded.config, shared.clock, shared.metrics
    grace_s = config.recording.offline_after_seconds + 2 * config.alerts.check_seconds
    alerts = AlertManager(
        config.alerts, writer, Dispatcher(build_channels(config.alerts)), clock.wall_ms(), grace_s
    )
    exports = ExportJobs(config, writer, volumes.current, clock, ffmpeg_binary(config))
    incidents = IncidentHolds(config, writer, clock.wall_ms)
    alerts.listeners.append(incidents)
    access, sources = _access(shared, writer)
    api_context = ApiContext(
        config, writer, clock, volumes.current, exports, metrics, access=access, live=footage.live
    )
    supervisor, ingestor = footage.supervisor, footage.ingestor
    retention = RetentionRunner(
        config,
        writer,
        volumes,
        clock.wall_ms,
        shared.stopping,
        lambda: ingestor.spools,
        supervisor.active_runs,
        lambda: supervisor.recorders_spool,
        footage.router.follow,
        metrics,
        metrics.purge_succeeded,
    )
    checks = HealthChecks(
        config,
        writer,
        volumes,
        footage.store,
        lambda: supervisor.recorders.values(),
        alerts,
        metrics,
        shared.notifier,
        writer.audit_log or audit_log(config),
        clock,
    )
    motion = MotionScheduler(
        config, writer, volumes.current, config.motion.workers or default_workers()
    )
    scrubber = Scrubber(writer, volumes.current, clock, config.integrity.scrub_mb_per_s)
    jobs = _jobs(config, footage, retention, checks, exports, clock, writer)
    checks.soon = lambda seconds: jobs.run_once("health", seconds)
    footage.state_changed.append(lambda: checks.soon(0))  # a camera's alert waits for no tick
    access.on_change = lambda _rooms: checks.soon(0)  # a door event: the rules at once
    return Parts(
        writer,
        volumes,
        footage,
        alerts,
        incidents,
        access,
        exports,
        api_context,
        ApiServer(api_context),
        motion,
        scrubber,
        retention,
        checks,
        jobs,
        sources,
    )


def _access(shared: Shared, writer: CatalogWriter) -> tuple[AccessLog, list[AccessSource]]:
    """The doors' events: the log that takes them, and the sources it follows."""
    config, clock = shared.loaded.config, shared.clock
    access = AccessLog(config, writer, clock, shared.metrics)
    access.finish_pending()  # visits a crash left underived
    sources: list[AccessSource] = []
    if config.access.file is not None:
        sources.append(FileFollower(config.access.file, access, writer, clock))
    if config.access.mqtt is not None:
        sources.append(MqttSource(config.access.mqtt, access))
    return access, sources


def _jobs(
    config: Config,
    footage: Footage,
    retention: RetentionRunner,
    checks: HealthChecks,
    exports: ExportJobs,
    clock: Clock,
    writer: CatalogWriter,
) -> Jobs:
    return Jobs(
        [
            Job(
                "node_heartbeat",
                lambda: heartbeat(config, writer, clock.wall_ms()),
                every(HEARTBEAT_S),
            ),
            Job("spool_rescan", footage.ingestor.wake, lambda c: c.recording.rescan_seconds),
            Job("health", checks.check, lambda c: c.alerts.check_seconds),
            Job("slow_checks", checks.slow, every(timing.SLOW_CHECKS_S)),
            # Its first run reads the whole audit log (~40 µs a record, bench/service.py): in the
            # scheduler's pool after start-up, never in the way of READY=1.
            Job("audit_check", checks.audit, every(timing.SLOW_CHECKS_S), first_after_s=0),
            Job(
                "audit_checkpoint",
                lambda: sign_audit_chain(writer, CheckpointKind.INTERVAL, clock),
                every(timing.AUDIT_CHECKPOINT_S),
            ),
            Job(
                "retention",
                retention.routine,
                every(timing.RETENTION_EVERY_S),
                first_after_s=timing.RETENTION_FIRST_S,
                on_failure=retention.failed,
            ),
            Job(
                "pressure",
                retention.pressure,
                every(timing.PRESSURE_EVERY_S),
                first_after_s=0,
                on_failure=retention.failed,
            ),
            Job("free_space_watch", retention.watch_free_space, every(timing.FREE_SPACE_WATCH_S)),
            Job("legal_hold_retry", retention.legal_holds, every(timing.LEGAL_HOLD_RETRY_S)),
            # Bundles in [export] dir are footage too: they expire after keep_days.
            Job(
                "export_expiry",
                lambda: exports.purge_expired(clock.wall_ms()),
                every(timing.EXPORT_EXPIRY_S),
                first_after_s=timing.RETENTION_FIRST_S,
            ),
        ],
        config,
    )


def sign_audit_chain(writer: CatalogWriter, kind: CheckpointKind, clock: Clock) -> None:
    """The audit chain's end signed (hourly, and at stop), so at most an hour's records — or
    what came after a crash — are vouched for by the catalog's head alone."""
    signed = writer.audit_chain.checkpoint(kind, clock.wall_ms())
    if signed is not None:
        log.info("audit.checkpoint", seq=signed.seq, kind=signed.kind)
