"""Commands about the door: access events, visits, occupancy. Every read is audited — who
entered which room when is personal data, like the footage."""

from __future__ import annotations

from typing import Any

import click

from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.footage_cmds import time_range
from ccvault.cli.output import emit_json, table
from ccvault.errors import NotFound, UsageError
from ccvault.timefmt import local_text
from ccvault.views import access
from ccvault.views.access import VisitOut

LIMIT = 100_000


@cli.command("access-events")
@click.option("--from", "start", required=True, metavar="T", help="Range start (inclusive).")
@click.option("--to", "end", required=True, metavar="T", help="Range end (exclusive).")
@json_option
@pass_app
def access_events(app: App, start: str, end: str, as_json: bool) -> None:
    """Door events in [--from, --to), in time order."""
    from_ms, to_ms = time_range(app, start, end)
    with app.reader() as conn:
        found = _capped(lambda: access.events(conn, from_ms, to_ms, LIMIT))
    _audit(app, "access.events", {"from_ms": from_ms, "to_ms": to_ms, "results": len(found)})
    if as_json:
        emit_json([e.as_json() for e in found])
        return
    tz = app.config.tz
    table(
        ["time", "room", "door", "person", "role", "direction", "result", "id"],
        [
            [
                local_text(e.time_ms, tz),
                e.room,
                e.door,
                e.person,
                e.role,
                e.direction,
                e.result,
                e.id,
            ]
            for e in found
        ],
    )


@cli.command()
@click.option("--room", help="Only this room.")
@click.option("--person", help="Only this person (their id in the access system).")
@click.option("--from", "start", required=True, metavar="T", help="Range start (inclusive).")
@click.option("--to", "end", required=True, metavar="T", help="Range end (exclusive).")
@json_option
@pass_app
def visits(
    app: App, room: str | None, person: str | None, start: str, end: str, as_json: bool
) -> None:
    """Visits overlapping [--from, --to): who was in which room, when, escorted by whom."""
    if room is not None and app.config.access.room(room) is None:
        raise NotFound(f"room {room}", "not in the config")
    from_ms, to_ms = time_range(app, start, end)
    with app.reader() as conn:
        found = _capped(
            lambda: access.visits(conn, app.config, from_ms, to_ms, room, person, LIMIT)
        )
    _audit(
        app,
        "access.visits",
        {"from_ms": from_ms, "to_ms": to_ms, "room": room, "person": person, "results": len(found)},
    )
    if as_json:
        emit_json([v.as_json() for v in found])
        return
    _visit_table(app, found)


@cli.command()
@json_option
@pass_app
def occupancy(app: App, as_json: bool) -> None:
    """Who is inside each room now, by the door log."""
    with app.reader() as conn:
        rooms = access.occupancy(conn, app.config)
    _audit(app, "access.occupancy", {"rooms": {r.room: r.count for r in rooms}})
    if as_json:
        emit_json([r.as_json() for r in rooms])
        return
    for room in rooms:
        click.echo(f"{room.room}: {room.count} inside")
        _visit_table(app, room.inside)


def _visit_table(app: App, rows: list[VisitOut]) -> None:
    tz = app.config.tz

    def when(ms: int | None) -> str | None:
        return local_text(ms, tz) if ms is not None else None

    table(
        ["visit", "room", "person", "role", "entered", "left", "escorted by", "flags"],
        [
            [
                v.id,
                v.room,
                v.person + (f" ({v.name})" if v.name else ""),
                v.role,
                when(v.entered_ms),
                when(v.left_ms) or ("inside" if v.entered_ms else None),
                ", ".join(v.escorted_by),
                ", ".join(v.flags),
            ]
            for v in rows
        ],
    )


def _capped(read: Any) -> Any:
    try:
        return read()
    except access.TooMany:
        raise UsageError("--to", f"more than {LIMIT} rows; narrow the range") from None


def _audit(app: App, action: str, details: dict[str, Any]) -> None:
    app.writer.record_event(app.actor(), action, "access", details, app.clock.wall_ms())
