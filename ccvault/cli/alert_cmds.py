"""`ccvault alerts`: what is firing now and what fired lately (read from the catalog)."""

from __future__ import annotations

import click

from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, table
from ccvault.errors import CHECK_FAILED
from ccvault.timefmt import local_text, parse_time
from ccvault.views.models import AlertOut, AlertsOut


@cli.command("alerts")
@json_option
@pass_app
def alerts_cmd(app: App, as_json: bool) -> None:
    """Alerts firing now, then those resolved within [alerts] history_days; exit 1 while
    any is firing (for scripts and monitoring checks)."""
    with app.reader() as conn:
        report = AlertsOut.read(conn, app.clock.wall_ms(), app.config.alerts.history_days)
    if as_json:
        emit_json(report.as_json())
    else:
        click.echo(f"firing: {len(report.active)}")
        _table(app, report.active)
        click.echo(
            f"\nresolved in the last {app.config.alerts.history_days:g} days: {len(report.recent)}"
        )
        _table(app, report.recent)
    if report.active:
        raise SystemExit(CHECK_FAILED)


def _table(app: App, rows: list[AlertOut]) -> None:
    if not rows:
        return
    tz = app.config.tz

    def when(text: str | None) -> str:
        return local_text(parse_time(text, tz, 0), tz) if text else "-"

    table(
        ["severity", "alert", "labels", "since", "resolved", "summary"],
        [
            [
                a.severity,
                a.name + (" (event)" if a.event else ""),
                " ".join(f"{k}={v}" for k, v in sorted(a.labels.items())),
                when(a.started),
                when(a.resolved),
                a.summary,
            ]
            for a in rows
        ],
    )
