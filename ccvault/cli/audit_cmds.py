"""Commands about the audit log and backups: audit list, audit verify, backup."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ccvault.catalog.audit import AuditLog
from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, human_bytes, table
from ccvault.errors import CHECK_FAILED
from ccvault.timefmt import local_text, parse_time

DETAILS_WIDTH = 120


@cli.group()
def audit() -> None:
    """The append-only, hash-chained record of every deletion, move, hold and repair."""


@audit.command("list")
@click.option("--action", metavar="NAME", help="Only records of this action (purge, hold.add…).")
@click.option("--since", metavar="T", help="Only records from time T on.")
@json_option
@pass_app
def audit_list(app: App, action: str | None, since: str | None, as_json: bool) -> None:
    """Audit records, oldest first (details shortened here; --json has them whole)."""
    since_ms = app.time(since, "--since") if since else None
    tz = app.config.tz
    records = [
        r
        for r in AuditLog(app.config.audit_path).records()
        if (action is None or r["action"] == action)
        and (since_ms is None or parse_time(r["time"], tz, 0) >= since_ms)
    ]
    if as_json:
        emit_json(records)
        return
    table(
        ["seq", "time", "actor", "action", "object", "details"],
        [
            [
                r["seq"],
                local_text(parse_time(r["time"], tz, 0), tz),
                r["actor"],
                r["action"],
                r["object"],
                _compact(r["details"]),
            ]
            for r in records
        ],
    )


def _compact(details: object) -> str:
    text = json.dumps(details, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= DETAILS_WIDTH else text[: DETAILS_WIDTH - 1] + "…"


@audit.command("verify")
@json_option
@pass_app
def audit_verify(app: App, as_json: bool) -> None:
    """Recompute the hash chain; exit 1 naming the first line that breaks it."""
    check = AuditLog(app.config.audit_path).verify()
    if as_json:
        emit_json(
            {
                "ok": check.ok,
                "records": check.records,
                "bad_line": check.bad_line,
                "problem": check.problem or None,
            }
        )
    elif check.ok:
        click.echo(f"audit log: {check.records} records, chain intact")
        if check.problem:
            click.echo(f"audit log: note: {check.problem}")
    else:
        click.echo(
            f"audit log: line {check.bad_line}: {check.problem} "
            f"({check.records} records before it intact)"
        )
    if not check.ok:
        sys.exit(CHECK_FAILED)


@cli.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@json_option
@pass_app
def backup(app: App, directory: Path, as_json: bool) -> None:
    """Copy the catalog and the audit log, consistent with each other, into DIR."""
    from ccvault.catalog.backup import backup as run_backup

    result = run_backup(app.config, app.writer, directory, app.clock.wall_ms(), app.actor())
    if as_json:
        emit_json(result)
        return
    click.echo(f"catalog: {result['catalog']} ({human_bytes(result['catalog_bytes'])})")
    if result["audit"]:
        click.echo(f"audit: {result['audit']} ({result['audit_records']} records)")
