"""The `ccvault` command. Commands are thin: parse, call one library function, render.

Conventions for every command: `--config FILE` (else CCVAULT_CONFIG, else
/etc/ccvault/ccvault.toml); `--json` puts only JSON on stdout; exit codes from ccvault.errors;
errors on stderr as `ccvault: error: <what>: <problem>`.
"""

from __future__ import annotations

import getpass
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from ccvault import __version__
from ccvault.catalog import db
from ccvault.catalog.dialect import PgOperationalError, backend_of, schema_version
from ccvault.catalog.schema import MIGRATIONS
from ccvault.catalog.writer import CatalogUnreachable, CatalogWriter
from ccvault.config.loading import LoadedConfig, load, resolve_path
from ccvault.config.model import CameraConfig, Config
from ccvault.errors import BUSY, CHECK_FAILED, USAGE, CcvaultError, NotFound, reason
from ccvault.host import logs
from ccvault.host.clock import SystemClock
from ccvault.timefmt import parse_time


class App:
    """What a command needs, built lazily so `--help` and usage errors touch nothing."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = resolve_path(config_path)
        self.config_named = bool(config_path or os.environ.get("CCVAULT_CONFIG"))
        self.clock = SystemClock()

    @cached_property
    def loaded(self) -> LoadedConfig:
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
        if schema_version(conn, backend_of(conn)) < len(MIGRATIONS):
            self.writer  # noqa: B018 (opening the writer migrates a catalog from an older ccvault)
        return closing(conn)

    def time(self, text: str, what: str) -> int:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    logs.configure(sys.stderr, logging.DEBUG if verbose else logging.INFO)
    ctx.obj = App(config_path)


def main() -> None:
    # Importing the command modules registers their commands.
    from ccvault.cli import (  # noqa: F401
        access_cmds,
        alert_cmds,
        audit_cmds,
        export_cmds,
        footage_cmds,
        motion_cmds,
        retention_cmds,
        service_cmds,
        storage_cmds,
        systemd_cmds,
        user_cmds,
    )

    try:
        cli.main(standalone_mode=False, prog_name="ccvault")
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", "interrupted", 130)
    except click.ClickException as exc:
        _fail("usage", exc.format_message(), USAGE)
    except CcvaultError as exc:
        _fail(exc.what, exc.problem, exc.code)
    except db.OperationalError as exc:
        if isinstance(exc, PgOperationalError):  # the server down, or unreachable from here
            _fail("catalog", f"unreachable: {str(exc).strip()}", BUSY)
        if "locked" in str(exc) or "busy" in str(exc):
            _fail("catalog", f"busy: {exc}", BUSY)
        raise
    except OSError as exc:  # a file that cannot be read or written: said, not a traceback
        _fail(str(exc.filename or "ccvault"), reason(exc), CHECK_FAILED)
    sys.exit(0)


def _fail(what: str, problem: str, code: int) -> None:
    click.echo(f"ccvault: error: {what}: {problem}", err=True)
    sys.exit(code)
