"""Commands about the audit log and backups: audit list, verify, acknowledge; backup."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ccvault.catalog.audit import AuditLog
from ccvault.catalog.audit_report import Report
from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, progress_bar, table
from ccvault.errors import CHECK_FAILED
from ccvault.text import size_text
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
@click.option(
    "--key",
    metavar="PUBKEY",
    help="Trust checkpoints signed by this key only: a PEM file, or the raw public key in "
    "base64 or hex. Default: this installation's key file when readable, else the key the "
    "catalog's head names.",
)
@json_option
@pass_app
def audit_verify(app: App, key: str | None, as_json: bool) -> None:
    """Check the chain, file by file, against the catalog's head and the signed checkpoints;
    exit 1 naming each problem nobody has acknowledged (a line broken, the tail cut, a file
    missing or replaced, records the catalog lacks)."""
    from ccvault.catalog.audit import audit_log
    from ccvault.catalog.audit_verify import verifier
    from ccvault.catalog.writes.audit import read_head
    from ccvault.evidence.signing import parse_public_key

    given = parse_public_key(key) if key else None
    with app.reader() as conn:
        node = app.config.node.name  # this node's file, against this node's head
        report = verifier(audit_log(app.config), lambda: read_head(conn, node), given).check()
    if as_json:
        emit_json(report.as_json())
    else:
        _show(report)
    if not report.ok:
        sys.exit(CHECK_FAILED)


def _show(report: Report) -> None:
    files = f" in {len(report.files)} files" if len(report.files) > 1 else ""
    head = f"catalog head seq {report.head.seq}" if report.head else "no catalog head yet"
    signed = report.checkpoints
    keys = f", key {signed.signer[:16]}… from {signed.key_source}" if signed.key_source else ""
    last = f", last at seq {signed.last_seq}" if signed.last_seq is not None else ""
    verdict = "chain intact" if not report.problems else "chain broken"
    click.echo(f"audit log: {report.records} records{files}, {verdict}; {head}")
    if signed.checked:
        click.echo(
            f"audit log: {signed.valid} of {signed.checked} signed checkpoints hold{last}{keys}"
        )
    for p in report.problems:
        ack = p.acknowledged
        label = f"acknowledged by {ack.actor} at {ack.time} ({ack.reason}): " if ack else ""
        click.echo(f"audit log: {label}{p.kind} at {p.where()}: {p.detail}")
    for note in report.notes:
        click.echo(f"audit log: note: {note}")


@audit.command("acknowledge")
@click.option("--reason", required=True, help="Why the break is accepted (audit log).")
@json_option
@pass_app
def audit_acknowledge(app: App, reason: str, as_json: bool) -> None:
    """Accept the problems `audit verify` reports now as known: an audited, signed record.
    They stay in every report, marked acknowledged, and `audit_chain_broken` resolves once
    the chain verifies from the new checkpoint on. Needs the signing key (the daemon's user);
    exit 4 when there is nothing to acknowledge."""
    from ccvault.catalog.audit_ack import acknowledge
    from ccvault.catalog.audit_verify import verifier

    writer = app.writer
    assert writer.audit_log is not None
    done = acknowledge(
        writer,
        verifier(writer.audit_log, writer.audit_chain.head),
        reason,
        app.actor(),
        app.clock.wall_ms(),
    )
    if as_json:
        emit_json(done.as_json())
        return
    for p in done.problems:
        click.echo(f"acknowledged: {p.kind} at {p.where()}: {p.detail}")
    click.echo(f"audit log: {len(done.problems)} problem(s) acknowledged at seq {done.seq}")


@cli.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@json_option
@pass_app
def backup(app: App, directory: Path, as_json: bool) -> None:
    """Copy the catalog and the audit log, consistent with each other, into DIR."""
    from ccvault.catalog.backup import backup as run_backup

    with progress_bar("backing up", as_json) as bar:
        result = run_backup(
            app.config, app.writer, directory, app.clock.wall_ms(), app.actor(), progress=bar
        )
    if as_json:
        emit_json(result)
        return
    click.echo(f"catalog: {result['catalog']} ({size_text(result['catalog_bytes'])})")
    if result["audit"]:
        click.echo(f"audit: {result['audit']} ({result['audit_records']} records)")
