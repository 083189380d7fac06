"""The daemon's periodic work: what runs, how often, and what a failure of it means.

Each part offers its work as plain methods; the daemon lists them here as `Job`s with their
intervals (some read from the config, so a reload reschedules them). APScheduler 3 runs them
in its thread pool with `coalesce` and `max_instances=1` (a slow pass is never stacked), and
every job failure is logged (APScheduler alone would only log it to stdlib logging).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from ccvault.catalog.writer import CatalogGone
from ccvault.config.model import Config

log = structlog.get_logger("ccvault.service")

RETENTION_EVERY_S = 300
RETENTION_FIRST_S = 15
PRESSURE_EVERY_S = 30
FREE_SPACE_WATCH_S = 2
SLOW_CHECKS_S = 60  # forecast (headroom), clock sync, the audit chain's new lines
AUDIT_CHECKPOINT_S = 3600  # the chain's end signed, if anything is unsigned
SCHEDULER_BEAT_S = 5
EXPORT_EXPIRY_S = 300
LEGAL_HOLD_RETRY_S = 5  # how often due retries are looked for (each has its own backoff)


@dataclass(frozen=True)
class Job:
    id: str
    run: Callable[[], None]
    every_s: Callable[[Config], float]  # the interval, from the config when it depends on it
    first_after_s: float | None = None  # None: one interval after the start
    on_failure: Callable[[str, BaseException], None] | None = None


def every(seconds: float) -> Callable[[Config], float]:
    return lambda _config: seconds


class Jobs:
    """The scheduler with the daemon's jobs, and a heartbeat job for the watchdog."""

    def __init__(self, jobs: list[Job], config: Config) -> None:
        self.jobs = {job.id: job for job in jobs}
        self.config = config
        self.heartbeat = time.monotonic()
        self.scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone="UTC",
        )
        self.scheduler.add_listener(self._failed, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        # What matters is logged above, as JSON; APScheduler's own stdlib lines (a traceback
        # per failure, "skipped: maximum number of running instances" when a job asked to run
        # soon is still running) would go to stderr unstructured, mid-line in the journal.
        logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
        self.scheduler.add_job(self._beat, "interval", seconds=SCHEDULER_BEAT_S, id="heartbeat")
        now = datetime.now(UTC)
        for job in jobs:
            first = (
                None if job.first_after_s is None else now + timedelta(seconds=job.first_after_s)
            )
            self.scheduler.add_job(
                job.run,
                "interval",
                seconds=job.every_s(config),
                id=job.id,
                **({"next_run_time": first} if first is not None else {}),
            )

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        """Waits for running jobs: a running pass stops at its next batch."""
        self.scheduler.shutdown(wait=True)

    def apply(self, config: Config) -> None:
        """Reschedule the jobs whose interval the new config changes."""
        for job in self.jobs.values():
            if job.every_s(config) != job.every_s(self.config):
                self.scheduler.reschedule_job(
                    job.id, trigger="interval", seconds=job.every_s(config)
                )
        self.config = config

    def run_once(self, job_id: str, in_s: float) -> None:
        """Run a job once more in `in_s` seconds, besides its interval (the latest ask wins)."""
        job = self.jobs[job_id]
        at = datetime.now(UTC) + timedelta(seconds=in_s)
        self.scheduler.add_job(
            job.run, "date", run_date=at, id=f"{job_id}-once", replace_existing=True
        )

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()

    def _failed(self, event: JobExecutionEvent) -> None:
        if event.exception is None:
            log.warning("scheduler.job_missed", job=event.job_id)
            return
        if isinstance(event.exception, CatalogGone):  # catalog_error says it; runs again later
            log.warning("scheduler.job_waiting", job=event.job_id, reason="the catalog is gone")
            return
        log.error("scheduler.job_failed", job=event.job_id, error=repr(event.exception))
        job = self.jobs.get(event.job_id)
        if job is not None and job.on_failure is not None:
            job.on_failure(event.job_id, event.exception)
