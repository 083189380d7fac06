"""Commands about the audit log and backups: audit list, audit verify, backup."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ccvault.audit import AuditLog
from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json
from ccvault.errors import CHECK_FAILED
from ccvault.timefmt import local_text, parse_time


@cli.group()
def audit() -> None:
    """The append-only, hash-chained record of every retention and hold change."""


@audit.command("list")
@click.option("--action", help="Only records of this action (e.g. purge, hold.add).")
@click.option("--since", metavar="T", help="Only records from time T on.")
@json_option
@pass_app
def audit_list(app: App, action: str | None, since: str | None, as_json: bool) -> None:
    """Audit records, oldest first."""
    since_ms = app.time(since, "--since") if since else None
    tz = app.config.tz
    records = [r for r in AuditLog(app.config.audit_path).records()
               if (action is None or r["action"] == action)
               and (since_ms is None or parse_time(r["time"], tz, 0) >= since_ms)]
    if as_json:
        emit_json(records)
        return
    for r in records:
        details = json.dumps(r["details"], separators=(",", ":"), ensure_ascii=False)
        if len(details) > 120:
            details = details[:117] + "..."
        click.echo(f"{r['seq']:>6}  {local_text(parse_time(r['time'], tz, 0), tz)}  "
                   f"{r['actor']}  {r['action']}  {r['object']}  {details}")


@audit.command("verify")
@json_option
@pass_app
def audit_verify(app: App, as_json: bool) -> None:
    """Check the hash chain; exit 1 naming the first bad line."""
    check = AuditLog(app.config.audit_path).verify()
    if as_json:
        emit_json({"ok": check.ok, "records": check.records, "bad_line": check.bad_line,
                   "problem": check.problem or None})
    elif check.ok:
        click.echo(f"audit log: {check.records} records, chain intact")
    else:
        click.echo(f"audit log: broken at line {check.bad_line}: {check.problem} "
                   f"({check.records} good records before it)")
    if not check.ok:
        sys.exit(CHECK_FAILED)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@json_option
@pass_app
def backup(app: App, directory: Path, as_json: bool) -> None:
    """Write a consistent copy of the catalog and the audit log into DIRECTORY."""
    from ccvault.backup import backup as run_backup

    result = run_backup(app.writer, directory, app.clock.wall_ms(), app.actor())
    if as_json:
        emit_json(result)
    else:
        click.echo(f"catalog: {result['catalog']}\naudit: {result['audit']}")
