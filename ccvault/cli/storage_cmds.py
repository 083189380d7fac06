"""Commands about storage: reconcile (make catalog and disks agree), verify (re-hash now),
volume init/replace."""

from __future__ import annotations

import sys

import click

from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, progress_bar
from ccvault.errors import CHECK_FAILED, UsageError
from ccvault.host.lock import daemon_running
from ccvault.storage.volumes import init_volume, open_volumes, spool_dirs
from ccvault.text import size_text
from ccvault.timefmt import local_text


@cli.command()
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@json_option
@pass_app
def reconcile(app: App, dry_run: bool, as_json: bool) -> None:
    """Compare catalog and volumes: ingest, adopt, set duplicates aside, report missing
    footage, foreign files (left where they are) and unavailable volumes (exit 1 if any)."""
    from ccvault.ingest.reconcile import reconcile as run_reconcile
    from ccvault.ingest.spool import Ingestor
    from ccvault.retention.executor import recover
    from ccvault.retention.locks import lock_dates
    from ccvault.storage.store import SegmentStore

    writer = app.writer
    running = daemon_running(app.config.lock_base, app.config.node.name)
    volumes = open_volumes(app.config, writer, app.clock.wall_ms())
    store = SegmentStore(writer, lambda: volumes, app.clock)
    if not running and not dry_run:
        recover(
            writer, volumes, lock_dates(app.config)
        )  # half-done purges first, before anything may be adopted
    # While the daemon runs, the spool is its own: a second ingester would race it.
    ingestor = None if running else Ingestor(store, spool_dirs(app.config, volumes).drain, set)
    with progress_bar("reconciling", as_json) as bar:
        report = run_reconcile(
            writer,
            store,
            volumes,
            ingestor,
            dry_run=dry_run,
            daemon_running=running,
            progress=bar,
            actor=app.actor(),
            cameras=[c.name for c in app.config.cameras],
        )
    if as_json:
        emit_json(report.as_json())
    else:
        for kind, items in report.as_json().items():
            click.echo(f"{kind}: {len(items)}")
            for item in items:
                click.echo("  " + ", ".join(f"{k}={v}" for k, v in item.items()))
    if not report.clean:
        sys.exit(CHECK_FAILED)


@cli.command()
@click.option("--camera", help="Only this camera's segments (default: every camera).")
@click.option("--from", "start", metavar="T", help="Segments overlapping [--from, --to) only.")
@click.option("--to", "end", metavar="T", help="End of the range (with --from).")
@json_option
@pass_app
def verify(app: App, camera: str | None, start: str | None, end: str | None, as_json: bool) -> None:
    """Re-hash the selected segments now against their SHA-256 (as the background scrub does,
    at full speed); record each verdict, so `segments` and the API show `corrupt`. Exit 1 on
    any corrupt, missing, unreadable or unchecked (volume unavailable) file."""
    from ccvault.catalog.queries import Selection
    from ccvault.storage.integrity import check_now
    from ccvault.timefmt import ordered

    if camera is not None:
        app.camera(camera)
    if (start is None) != (end is None):
        raise UsageError("--to" if end is None else "--from", "--from and --to go together")
    selection = Selection(camera)
    if start is not None and end is not None:
        from_ms, to_ms = app.time(start, "--from"), app.time(end, "--to")
        ordered(from_ms, to_ms, "--from", "--to")
        selection = Selection(camera, from_ms, to_ms)
    volumes = open_volumes(app.config, app.writer, app.clock.wall_ms())
    with progress_bar("verifying", as_json) as bar:
        report = check_now(
            app.writer, volumes, selection, app.clock.wall_ms, app.actor(), progress=bar
        )
    if as_json:
        emit_json(report.as_json())
    else:
        for verdict in _VERDICTS:
            for seg in report.found.get(verdict, []):
                click.echo(
                    f"segment {seg.id} of {seg.camera} ({local_text(seg.start_ms, app.config.tz)}"
                    f", {seg.volume}:{seg.path}): {_VERDICTS[verdict]}"
                )
        click.echo(
            f"{report.checked} segment(s), {size_text(report.bytes)}: {report.ok} match "
            "their SHA-256"
        )
    if report.failed():
        sys.exit(CHECK_FAILED)


_VERDICTS = {  # what `verify` says of a segment that did not match
    "corrupt": "corrupt (the file no longer matches its SHA-256; it is kept as it is)",
    "missing": "missing (the file is gone)",
    "unreadable": "not read (not a regular file, or not readable)",
    "unavailable": "not checked (its volume is unavailable)",
    "moved": "not checked (moved by retention while it was read: verify again)",
}


@cli.group()
def volume() -> None:
    """Initialise or replace a storage volume on purpose."""


@volume.command("init")
@click.argument("name")
@pass_app
def volume_init(app: App, name: str) -> None:
    """Write the identity of a volume that has none (e.g. its identity file was lost)."""
    volume_uuid = init_volume(app.config, app.writer, name, app.clock.wall_ms())
    click.echo(f"volume {name}: initialised ({volume_uuid})")


@volume.command("replace")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace a volume that is available (the disk the catalog expects); its footage is "
    "found again on it.",
)
@pass_app
def volume_replace(app: App, name: str, yes: bool, force: bool) -> None:
    """A new disk takes the place of a lost one: its old footage is marked missing, then the
    new disk is reconciled (footage on it found or adopted). Refused (exit 4) for an available
    volume without --force; exit 1 when reconcile has findings."""
    from ccvault.ingest.reconcile import replace_and_reconcile

    if not yes and sys.stdin.isatty():
        click.confirm(f"Mark all footage catalogued on {name} as missing?", abort=True)
    lost, report = replace_and_reconcile(
        app.config, app.writer, app.clock, name, force=force, actor=app.actor()
    )
    click.echo(
        f"volume {name}: replaced; {lost} segment(s) marked missing, "
        f"{len(report.found)} found again and {len(report.adopted)} adopted on the new disk"
    )
    for kind in ("duplicates", "foreign"):
        for item in getattr(report, kind):
            click.echo(f"  {kind}: " + ", ".join(f"{k}={v}" for k, v in item.items()))
    if report.foreign or report.duplicates or report.unavailable:
        sys.exit(CHECK_FAILED)
