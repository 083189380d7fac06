"""The `ccvault` command. Commands are thin: parse, call one library function, render.

Conventions for every command: `--config FILE` (else CCVAULT_CONFIG, else
/etc/ccvault/ccvault.toml); `--json` puts only JSON on stdout; exit codes from ccvault.errors;
errors on stderr as `ccvault: error: <what>: <problem>`.

A command imports only what it uses: its module is imported when it is invoked (`COMMANDS`),
and the catalog and config loading when the command first asks for them. `ccvault analyze`
is a per-file tool whose whole-process CPU is measured against a bare decode
(bench/motion.py); importing every command's dependencies cost it ~0.8 s of CPU per file.
"""

from __future__ import annotations

import getpass
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from enum import Enum
from functools import cached_property
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ccvault import __version__
from ccvault.catalog import dialect
from ccvault.config.file import resolve_path
from ccvault.errors import BUSY, CHECK_FAILED, USAGE, CcvaultError, NotFound, reason
from ccvault.host.clock import SystemClock

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter
    from ccvault.config.loading import LoadedConfig
    from ccvault.config.model import CameraConfig, Config

# Each top-level command and the module (in this package) that defines it;
# tests/test_cli_lazy.py checks the table against what the modules register.
COMMANDS = {
    "access-events": "access_cmds",
    "occupancy": "access_cmds",
    "visits": "access_cmds",
    "alerts": "alert_cmds",
    "audit": "audit_cmds",
    "backup": "audit_cmds",
    "export": "export_cmds",
    "exports": "export_cmds",
    "verify-export": "export_cmds",
    "signing-key": "export_cmds",
    "import": "footage_cmds",
    "motion": "footage_cmds",
    "segment-file": "footage_cmds",
    "segments": "footage_cmds",
    "analyze": "motion_cmds",
    "explain": "retention_cmds",
    "hold": "retention_cmds",
    "purge": "retention_cmds",
    "check-config": "service_cmds",
    "run": "service_cmds",
    "status": "service_cmds",
    "reconcile": "storage_cmds",
    "verify": "storage_cmds",
    "volume": "storage_cmds",
    "systemd-dropin": "systemd_cmds",
    "user": "user_cmds",
}
# Commands whose modules log only through `logs.get_logger` (tests/test_motion.py checks that
# analyze does not import structlog unless it logs).
LOGS_WHEN_USED = {"analyze"}


class App:
    """What a command needs, built lazily so `--help` and usage errors touch nothing."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = resolve_path(config_path)
        self.config_named = bool(config_path or os.environ.get("CCVAULT_CONFIG"))
        self.clock = SystemClock()

    @cached_property
    def loaded(self) -> LoadedConfig:
        from ccvault.config.loading import load

        return load(self.config_path)

    @property
    def config(self) -> Config:
        return self.loaded.config

    @cached_property
    def writer(self) -> CatalogWriter:
        """The catalog writer; alert events this command raises (a purge's premature
        deletion, a failed export) are recorded through it, unsent: this process reaches no
        channel, the daemon sends each once (`alerts.record`)."""
        from ccvault.alerts.record import cli_recorder
        from ccvault.catalog.audit import audit_log
        from ccvault.catalog.writer import CatalogWriter
        from ccvault.host import events

        writer = CatalogWriter(
            self.config.catalog_target,
            audit_log(self.config),
            self.config.lock_base,
            self.config.node.name,
        )
        events.listen(cli_recorder(writer, self.config.alerts, self.clock.wall_ms))
        return writer

    def reader(self) -> AbstractContextManager[sqlite3.Connection]:
        """For commands that only read: a wrong catalog path is an error, not a new catalog."""
        from ccvault.catalog import db
        from ccvault.catalog.schema import MIGRATIONS
        from ccvault.catalog.writer import CatalogUnreachable

        path = self.config.catalog_target
        if isinstance(path, Path) and not path.is_file():
            raise NotFound(
                f"catalog {path}",
                "does not exist (the daemon has not run yet, or the path is wrong)",
            )
        try:
            conn = db.connect(path, readonly=True)
        except db.OperationalError as exc:
            if isinstance(path, Path):
                raise
            raise CatalogUnreachable("catalog", f"unreachable: {str(exc).strip()}") from None
        if dialect.schema_version(conn, dialect.backend_of(conn)) < len(MIGRATIONS):
            self.writer  # noqa: B018 (opening the writer migrates a catalog from an older ccvault)
        return closing(conn)

    def time(self, text: str, what: str) -> int:
        from ccvault.timefmt import parse_time

        return parse_time(text, self.config.tz, self.clock.wall_ms(), what)

    def camera(self, name: str) -> CameraConfig:
        cam = self.config.camera(name)
        if cam is None:
            raise NotFound(f"camera {name}", "not in the config")
        return cam

    @staticmethod
    def actor() -> str:
        user = os.environ.get("SUDO_USER")
        if not user:
            try:
                user = getpass.getuser()
            except (KeyError, OSError):
                user = str(os.getuid())
        return f"cli:{user}"


pass_app = click.make_pass_decorator(App)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON only (stdout), for machines."
    )(f)


class LazyGroup(click.Group):
    """The top-level group: a command's module is imported when the command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            import_module(f"{__name__}.{module}")  # its decorators register its commands
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Config file (default: $CCVAULT_CONFIG, then /etc/ccvault/ccvault.toml).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug events.")
@click.version_option(__version__, prog_name="ccvault")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """ccvault: camera footage recorder with policy-driven retention."""
    from ccvault.host import logs

    # A command that logs only when something goes wrong loads structlog only then.
    quiet = ctx.invoked_subcommand in LOGS_WHEN_USED
    logs.configure(sys.stderr, logging.DEBUG if verbose else logging.INFO, when_used=quiet)
    ctx.obj = App(config_path)


class Exit(Enum):
    """What a command may return to say how its process ends (else ordinarily)."""

    WITHOUT_TEARDOWN = "without teardown"


def main() -> None:
    try:
        result = cli.main(standalone_mode=False, prog_name="ccvault")
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", "interrupted", 130)
    except click.ClickException as exc:
        _fail("usage", exc.format_message(), USAGE)
    except CcvaultError as exc:
        _fail(exc.what, exc.problem, exc.code)
    except dialect.OperationalError as exc:
        if isinstance(exc, dialect.PgOperationalError):  # the server down, or unreachable from here
            _fail("catalog", f"unreachable: {str(exc).strip()}", BUSY)
        if "locked" in str(exc) or "busy" in str(exc):
            _fail("catalog", f"busy: {exc}", BUSY)
        raise
    except OSError as exc:  # a file that cannot be read or written: said, not a traceback
        _fail(str(exc.filename or "ccvault"), reason(exc), CHECK_FAILED)
    if result is Exit.WITHOUT_TEARDOWN:
        _exit_without_teardown()
    sys.exit(0)


def _exit_without_teardown() -> None:
    """Exit 0 without the interpreter's teardown: freeing numpy's, OpenCV's, PyAV's and
    pydantic's modules costs ~50 ms of CPU, a fifth of the start-up `ccvault analyze` pays
    per file (bench/motion.py). Only for a command that closed every file it opened and
    registered nothing to run at exit; its output is flushed here, and a flush that fails (a
    closed pipe) takes the ordinary exit, which reports it."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return
    os._exit(0)


def _fail(what: str, problem: str, code: int) -> None:
    click.echo(f"ccvault: error: {what}: {problem}", err=True)
    sys.exit(code)
