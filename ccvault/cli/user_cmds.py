"""Commands about people who may use the HTTP API: user add, list, rotate, role, revoke.

`user add` and `user rotate` print the token and nothing else, once: only its SHA-256 is
stored, so it can be piped straight into a secret store (`ccvault user add ann --role viewer >
ann.token`). Every change is audited by the catalog writer, with the Unix user who ran the
command as the actor.
"""

from __future__ import annotations

import click

from ccvault.api import users
from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, table
from ccvault.timefmt import local_text, parse_time


@cli.group()
def user() -> None:
    """People who may use the HTTP API: each has a role and a token shown only once."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(users.ALL_ROLES),
    help="viewer: search and watch; operator: also export and holds; "
    "admin: also users and the audit log.",
)
@click.option("--expires", metavar="T", help="The token stops working at time T (e.g. +90d).")
@pass_app
def user_add(app: App, name: str, role: str, expires: str | None) -> None:
    """Create a user and print its token (alone, once: only a hash of it is kept). The name
    of a revoked or expired user may be added again (a new token and role)."""
    expires_ms = app.time(expires, "--expires") if expires else None
    token = users.add(app.writer, name, role, expires_ms, app.actor(), app.clock.wall_ms())
    click.echo(token)


@user.command("list")
@json_option
@pass_app
def user_list(app: App, as_json: bool) -> None:
    """Every user ever added: role, state (active, expired, revoked), created, expires."""
    with app.reader() as conn:
        rows = users.listing(conn, app.clock.wall_ms())
    if as_json:
        emit_json(rows)
        return
    tz = app.config.tz

    def local(text: str | None) -> str | None:
        return local_text(parse_time(text, tz, 0), tz) if text else None

    table(
        ["name", "role", "state", "created", "expires", "created by"],
        [
            [
                r["name"],
                r["role"],
                r["state"],
                local(r["created"]),
                local(r["expires"]),
                r["created_by"],
            ]
            for r in rows
        ],
    )


@user.command("revoke")
@click.argument("name")
@pass_app
def user_revoke(app: App, name: str) -> None:
    """Stop a user's token at once (exit 3 if there is no such active user)."""
    users.revoke(app.writer, name, app.actor(), app.clock.wall_ms())
    click.echo(f"revoked user {name}")


@user.command("rotate")
@click.argument("name")
@pass_app
def user_rotate(app: App, name: str) -> None:
    """Give an active user a new token and print it (alone, once); the old token stops
    working at once, and so do browser sessions signed in with it."""
    click.echo(users.rotate(app.writer, name, app.actor(), app.clock.wall_ms()))


@user.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(users.ROLES))
@pass_app
def user_role(app: App, name: str, role: str) -> None:
    """Change an active user's role; their next request, in a session too, has the new one."""
    before = users.set_role(app.writer, name, role, app.actor(), app.clock.wall_ms())
    click.echo(f"user {name}: {before} → {role}" if before != role else f"user {name}: {role}")
