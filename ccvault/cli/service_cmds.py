"""Commands about the service itself: run (the daemon), check-config, status."""

from __future__ import annotations

import logging
import sys
from zoneinfo import ZoneInfo

import click

from ccvault.catalog.writer import CatalogGone
from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, table
from ccvault.errors import CHECK_FAILED
from ccvault.host import logs
from ccvault.host.lock import daemon_running
from ccvault.text import size_text
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
    """Cameras (state, last footage, last 24 h), volumes (state, space), the catalog, and what
    waits in the spool. With the catalog out of reach: the catalog and the spool only, exit 1."""
    running = daemon_running(app.config.lock_base, app.config.node.name)
    try:
        with app.reader() as conn:
            report = status.build(app.config, conn, app.clock.wall_ms(), running)
    except CatalogGone as exc:
        report = status.without_catalog(app.config, running, exc.problem)
    if as_json:
        emit_json(report)
    else:
        _status_text(app, report)
    if not report["catalog"]["reachable"]:
        sys.exit(CHECK_FAILED)


def _status_text(app: App, report: dict) -> None:
    click.echo(f"daemon: {'running' if report['daemon']['running'] else 'not running'}")
    catalog, waiting = report["catalog"], report["spool_backlog"]
    if not catalog["reachable"]:
        # The reason as errors give it ("unreachable: ..."), without saying it twice.
        click.echo(f"catalog: UNREACHABLE: {catalog['error'].removeprefix('unreachable: ')}")
    oldest = waiting["oldest_end_ms"]
    since = f" (oldest ended {local_text(oldest, app.config.tz)})" if oldest is not None else ""
    click.echo(f"spool: {waiting['segments']} segment(s) waiting for the catalog{since}")
    if not catalog["reachable"]:
        return
    if len(report["nodes"]) > 1:  # one catalog, several nodes: which are up
        click.echo(
            "nodes: "
            + ", ".join(
                f"{n['name']}{' (this one)' if n['name'] == report['node'] else ''} "
                + ("up" if n["up"] else f"down since {_local(n['last_seen'], app.config.tz)}")
                for n in report["nodes"]
            )
        )
    _camera_table(report["cameras"], app.config.tz)
    click.echo()
    _volume_table(report["volumes"])
    r = report["retention"]
    click.echo()
    click.echo(r["summary"])
    click.echo(
        f"{r['active_holds']} active hold(s); thinning saved {r['thin_saved_text']} on "
        f"{r['thinned_segments']} segment(s)"
    )
    if r["legal_holds_pending"]:
        click.echo(
            f"{r['legal_holds_pending']} legal hold change(s) not taken by the object store yet "
            "(the daemon retries them)"
        )


def _camera_table(cameras: list[dict], tz: ZoneInfo) -> None:
    table(
        ["camera", "state", "since", "last footage", "24h segments", "24h bytes", "motion backlog"],
        [
            [
                c["name"],
                c["state"],
                _local(c["since"], tz),
                _local(c["last_segment_end"], tz),
                c["segments_24h"],
                size_text(c["bytes_24h"]),
                duration_text(round(c["motion_backlog_seconds"] * 1000)),
            ]
            for c in cameras
        ],
    )


def _volume_table(volumes: list[dict]) -> None:
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
                size_text(v["free_bytes"]),
                size_text(v["total_bytes"]),
                size_text(v["footage_bytes"]),
                (v["forecast"] or {}).get("days"),
                (v["forecast"] or {}).get("headroom_days"),
                v["path"],
            ]
            for v in volumes
        ],
    )


def _local(utc: str | None, tz: ZoneInfo) -> str | None:
    if utc is None:
        return None
    return local_text(parse_time(utc, tz, 0), tz)
