"""Commands about the service itself: run, check-config, status, reconcile, volume."""

from __future__ import annotations

import logging
import sys

import click

from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, human_bytes, stderr_is_terminal, table
from ccvault.errors import CHECK_FAILED
from ccvault.host import logs
from ccvault.host.lock import daemon_running
from ccvault.storage.volumes import init_volume, open_volumes, replace_volume, spool_dirs
from ccvault.timefmt import duration_text, local_text, parse_time
from ccvault.views import status


@cli.command()
@pass_app
def run(app: App) -> None:
    """Run the daemon: record every enabled camera, ingest, index (foreground; systemd)."""
    from ccvault.service.daemon import (
        Daemon,  # the heavy parts load only for the commands using them
    )

    logs.configure(sys.stdout, logging.INFO)
    sys.exit(Daemon(app.loaded, app.clock).run())


@cli.command("check-config")
@json_option
@pass_app
def check_config(app: App, as_json: bool) -> None:
    """Validate the config file; exit 2 naming the file and key when it is wrong."""
    loaded = app.loaded
    for warning in loaded.warnings:
        click.echo(f"ccvault: warning: {warning}", err=True)
    summary = {
        "config": str(loaded.path),
        "valid": True,
        "cameras": [c.name for c in loaded.config.cameras],
        "volumes": [v.name for v in loaded.config.storage.volumes],
        "warnings": list(loaded.warnings),
    }
    if as_json:
        emit_json(summary)
    else:
        click.echo(
            f"{loaded.path}: ok ({len(summary['cameras'])} cameras, "
            f"{len(summary['volumes'])} volumes)"
        )


@cli.command("status")
@json_option
@pass_app
def status_cmd(app: App, as_json: bool) -> None:
    """Cameras (state, last footage, last 24 h) and volumes (state, space)."""
    with app.reader() as conn:
        report = status.build(
            app.config, conn, app.clock.wall_ms(), daemon_running(app.config.storage.catalog)
        )
    if as_json:
        emit_json(report)
        return
    tz = app.config.tz
    click.echo(f"daemon: {'running' if report['daemon']['running'] else 'not running'}")
    table(
        ["camera", "state", "since", "last footage", "24h segments", "24h bytes", "motion backlog"],
        [
            [
                c["name"],
                c["state"],
                _local(c["since"], tz),
                _local(c["last_segment_end"], tz),
                c["segments_24h"],
                human_bytes(c["bytes_24h"]),
                duration_text(round(c["motion_backlog_seconds"] * 1000)),
            ]
            for c in report["cameras"]
        ],
    )
    click.echo()
    table(
        [
            "volume",
            "role",
            "state",
            "free",
            "total",
            "footage",
            "holds days",
            "headroom days",
            "path",
        ],
        [
            [
                v["name"],
                v["role"],
                v["state"] + (f" ({v['reason']})" if v["reason"] else ""),
                human_bytes(v["free_bytes"]),
                human_bytes(v["total_bytes"]),
                human_bytes(v["footage_bytes"]),
                (v["forecast"] or {}).get("days"),
                (v["forecast"] or {}).get("headroom_days"),
                v["path"],
            ]
            for v in report["volumes"]
        ],
    )
    r = report["retention"]
    click.echo()
    click.echo(
        f"store holds {r['days'] if r['days'] is not None else '-'} days at "
        f"{human_bytes(r['bytes_per_day'])}/day (min_days {r['min_days']:g}"
        f"{', AT RISK' if r['at_risk'] else ''}); headroom "
        f"{r['headroom_days'] if r['headroom_days'] is not None else '-'} days; "
        f"{r['active_holds']} active hold(s); thinning saved "
        f"{human_bytes(r['thin_saved_bytes'])} on {r['thinned_segments']} segments"
    )


def _local(utc: str | None, tz) -> str | None:
    if utc is None:
        return None
    return local_text(parse_time(utc, tz, 0), tz)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@json_option
@pass_app
def reconcile(app: App, dry_run: bool, as_json: bool) -> None:
    """Compare catalog and volumes: ingest, adopt, quarantine, report missing (exit 1 if any)."""
    from ccvault.ingest.reconcile import reconcile as run_reconcile
    from ccvault.ingest.spool import Ingestor
    from ccvault.retention.executor import recover
    from ccvault.storage.store import SegmentStore

    writer = app.writer
    running = daemon_running(app.config.storage.catalog)
    volumes = open_volumes(app.config, writer, app.clock.wall_ms())
    store = SegmentStore(writer, lambda: volumes, app.clock)
    if not running and not dry_run:
        recover(writer, volumes)  # half-done purges first, before anything may be adopted
    # While the daemon runs, the spool is its own: a second ingester would race it.
    ingestor = None if running else Ingestor(store, spool_dirs(app.config, volumes).drain, set)
    show = stderr_is_terminal() and not as_json
    report = run_reconcile(
        writer,
        store,
        volumes,
        ingestor,
        dry_run=dry_run,
        daemon_running=running,
        progress=(lambda where: click.echo(f"reconcile: checking {where}…", err=True))
        if show
        else (lambda _: None),
        actor=app.actor(),
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
@pass_app
def volume_replace(app: App, name: str, yes: bool) -> None:
    """A new disk takes the place of a lost one: its old footage is marked missing."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Mark all footage catalogued on {name} as missing?", abort=True)
    lost = replace_volume(app.config, app.writer, name, app.clock.wall_ms())
    click.echo(f"volume {name}: replaced; {lost} segment(s) marked missing")
