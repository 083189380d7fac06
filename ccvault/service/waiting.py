"""Recording before the catalog answers: a daemon started while its PostgreSQL catalog is out
of reach records anyway.

Recording is the point, so the cameras do not wait for the database. But the checks that need
the catalog stay honest: the volumes' identities (each names the catalog's id), intents to
recover, reconcile, the alert history — the full start-up (`parts.build`) runs only once the
catalog answers. Until then the cameras record into one spool (`spool_without_catalog`:
`[storage] spool`, else the `.spool` of a volume that carries a ccvault identity — never an
empty mount point —, else state_dir's), each finished segment made durable there
(`SpoolJournal.keep`), and the outage is logged (`daemon.catalog_unreachable`). When the
catalog answers, these recorders close their segments cleanly and the start-up runs as always:
its reconcile ingests what they recorded. Between the two a camera loses the seconds its
reconnect takes.
"""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from ccvault.catalog import db
from ccvault.config.model import Config
from ccvault.config.places import SPOOL_DIR
from ccvault.host import threads
from ccvault.host.clock import Clock
from ccvault.ingest.backlog import SpoolJournal, waiting
from ccvault.ingest.spool import read_list, run_dirs
from ccvault.recorder.supervisor import Supervisor
from ccvault.storage.volumes import IDENTITY_FILE

log = structlog.get_logger("ccvault.daemon")

RETRY_S = 2.0  # how often the catalog is tried while it is out of reach


def spool_without_catalog(config: Config) -> Path:
    """Where to record before the catalog can say which volumes are ours."""
    if config.storage.spool is not None:
        return config.storage.spool
    ordered = sorted(config.storage.directories, key=lambda v: v.role != "hot")
    for volume in ordered:
        if (volume.path / IDENTITY_FILE).is_file():
            return volume.path / SPOOL_DIR
    return config.state_dir / SPOOL_DIR


def reachable(config: Config) -> str | None:
    """None when the catalog answers; else why not. A SQLite file always "answers"."""
    if not isinstance(config.catalog_target, db.PgCatalog):
        return None
    try:
        db.connect(config.catalog_target).close()
    except db.OperationalError as exc:
        return str(exc).strip().splitlines()[0]
    return None


def record_until_reachable(config: Config, clock: Clock, stopping: threading.Event) -> bool:
    """Return once the catalog answers (True) or the daemon is told to stop (False),
    recording into the spool meanwhile."""
    problem = reachable(config)
    if problem is None:
        return True
    spool = spool_without_catalog(config)
    log.error("daemon.catalog_unreachable", error=problem, spool=str(spool))
    supervisor = Supervisor(config, spool, clock, _no_state)
    thread = threads.Thread(target=supervisor.run, name="supervisor-before-catalog")
    thread.start()
    journal = SpoolJournal(lambda _camera: None)
    try:
        while problem is not None and not stopping.wait(RETRY_S):
            _keep(journal, spool)
            problem = reachable(config)
    finally:
        supervisor.stop()  # the recorders close their segments; start-up ingests them
        thread.join()
        _keep(journal, spool)
    if problem is None:
        log.warning("daemon.catalog_reachable", catalog=str(config.catalog_target))
    return problem is None


def _keep(journal: SpoolJournal, spool: Path) -> None:
    try:
        journal.keep(waiting(run_dirs([spool]), read_list))
    except OSError as exc:
        log.error("spool.keep_failed", error=str(exc))


def _no_state(*_args: object) -> None:
    """Camera states have nowhere to go before the catalog (they are logged)."""
