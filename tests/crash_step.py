"""Subprocess entry points for tests/test_retention_faults.py (run as `python -m tests.crash_step`).

    crash CONFIG STEP    one retention pass whose executor SIGKILLs its own process at STEP
                         (or, for `thin.ffmpeg_done`, inside the first keyframes-only copy,
                         once ffmpeg has written its hidden file)
    session              a warm `ccvault` for a sequence of commands: one JSON argv list per
                         stdin line, one JSON {"rc", "stdout", "stderr"} line back per command
    daemon CONFIG FIRST  `ccvault run` with the first retention pass FIRST seconds after start
    ingest CONFIG STEP NTH
                         one ingest scan of the spool (the catch-up after a catalog outage)
                         whose store SIGKILLs its own process the NTH time it reaches STEP
    import CONFIG CAMERA START FILE
                         `ccvault import` SIGKILLed once its segments are stored, before it
                         analyses them (what a crash or a reboot mid-import leaves)

Each session command runs through `ccvault.cli.main` with a fresh `App` (its own config load,
catalog writer and volume check), exactly as a new `ccvault` process would; the session only
saves the interpreter start and imports per command.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import traceback
from pathlib import Path


def crash(config_path: str, step: str) -> int:
    from ccvault.catalog.audit import audit_log
    from ccvault.catalog.writer import CatalogWriter
    from ccvault.config.loading import load
    from ccvault.host.clock import SystemClock
    from ccvault.recorder.ffmpeg import ffmpeg_binary
    from ccvault.retention.executor import Executor
    from ccvault.retention.locks import lock_dates
    from ccvault.retention.passes import run_pass
    from ccvault.storage.volumes import open_volumes

    config = load(Path(config_path)).config
    clock = SystemClock()
    writer = CatalogWriter(config.catalog_target, audit_log(config))
    volumes = open_volumes(config, writer, clock.wall_ms())

    def checkpoint(reached: str) -> None:
        if reached == step:
            os.kill(os.getpid(), signal.SIGKILL)

    if step == "thin.ffmpeg_done":
        import ccvault.storage.thinning

        ccvault.storage.thinning.fsync_file = lambda _path: checkpoint(step)  # type: ignore[assignment]

    executor = Executor(
        writer,
        lambda: volumes,
        clock.wall_ms,
        ffmpeg_binary(config),
        actor="test:crash",
        checkpoint=checkpoint,
        lock_until=lock_dates(config),
    )
    with writer.reader() as conn:
        outcome = run_pass(conn, config, volumes, executor, clock.wall_ms())
    print(json.dumps({"step_not_reached": step, "outcome": outcome.__dict__}, default=str))
    return 0


def session() -> int:
    import ccvault.cli

    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    for line in sys.stdin:
        if not line.strip():
            continue
        argv = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        sys.argv = ["ccvault", *argv]
        rc: object = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                ccvault.cli.main()
            except SystemExit as exc:
                rc = exc.code
            except Exception:  # a crash of one command is its result, not the session's end
                traceback.print_exc()
                rc = 1
        if rc is None:
            rc = 0
        elif not isinstance(rc, int):
            err.write(str(rc))
            rc = 1
        proto.write(
            json.dumps({"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}) + "\n"
        )
    return 0


def daemon(config_path: str, first_s: str) -> int:
    import ccvault.cli
    import ccvault.service.jobs

    ccvault.service.jobs.RETENTION_FIRST_S = float(first_s)
    sys.argv = ["ccvault", "--config", config_path, "run"]
    ccvault.cli.main()
    return 0


def import_then_die(config_path: str, camera: str, start: str, file: str) -> int:
    import ccvault.cli
    import ccvault.ingest.importer

    def die(*_args: object, **_kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    ccvault.ingest.importer.analyse_in_order = die  # type: ignore[assignment]
    sys.argv = [
        "ccvault",
        "--config",
        config_path,
        "import",
        "--camera",
        camera,
        "--start",
        start,
        file,
    ]
    ccvault.cli.main()
    return 0


def ingest_then_die(config_path: str, step: str, nth: str) -> int:
    from ccvault.catalog.audit import audit_log
    from ccvault.catalog.writer import CatalogWriter
    from ccvault.config.loading import load
    from ccvault.host.clock import SystemClock
    from ccvault.ingest.spool import Ingestor
    from ccvault.storage.store import SegmentStore
    from ccvault.storage.volumes import open_volumes, spool_dirs

    config = load(Path(config_path)).config
    clock = SystemClock()
    writer = CatalogWriter(config.catalog_target, audit_log(config), config.lock_base)
    volumes = open_volumes(config, writer, clock.wall_ms())
    reached: list[str] = []

    def checkpoint(at: str) -> None:
        reached.append(at)
        if reached.count(step) == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)

    store = SegmentStore(writer, lambda: volumes, clock, checkpoint=checkpoint)
    Ingestor(store, spool_dirs(config, volumes).drain, set).scan()
    return 0


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    sys.exit(
        {
            "crash": crash,
            "session": session,
            "daemon": daemon,
            "import": import_then_die,
            "ingest": ingest_then_die,
        }[mode](*args)
    )
