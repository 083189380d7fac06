"""Commands about keeping footage: purge (and its dry run), explain, holds."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, progress_bar, table
from ccvault.errors import UsageError
from ccvault.text import size_text
from ccvault.timefmt import local_text

if TYPE_CHECKING:
    from ccvault.retention.planner import Decision
    from ccvault.views.models import ExplanationOut


def _volumes(app: App) -> list:
    from ccvault.storage.volumes import open_volumes

    return open_volumes(app.config, app.writer, app.clock.wall_ms())


@cli.command()
@click.option("--dry-run", is_flag=True, help="Show what would happen and why; change nothing.")
@click.option("--at", "at", metavar="T", help="Plan as if it were time T (with --dry-run).")
@click.option("--all", "show_all", is_flag=True, help="List kept segments too (with --dry-run).")
@json_option
@pass_app
def purge(app: App, dry_run: bool, at: str | None, show_all: bool, as_json: bool) -> None:
    """Apply the retention policy now: delete, thin and migrate what it says, in order."""
    from ccvault.host.lock import daemon_running
    from ccvault.storage.volumes import spool_dirs

    if (at or show_all) and not dry_run:
        raise UsageError("purge", "--at and --all only go with --dry-run")
    now_ms = app.time(at, "--at") if at else app.clock.wall_ms()
    volumes = _volumes(app)
    running = daemon_running(app.config.lock_base, app.config.node.name)
    # Beside a running daemon the spool is the daemon's own.
    spools = [] if running else spool_dirs(app.config, volumes).drain
    if dry_run:
        _preview(app, volumes, spools, now_ms, show_all, as_json)
    else:
        _purge_now(app, volumes, spools, now_ms, running, as_json)


def _purge_now(
    app: App, volumes: list, spools: list, now_ms: int, running: bool, as_json: bool
) -> None:
    from ccvault.recorder.ffmpeg import ffmpeg_binary
    from ccvault.retention.executor import Executor, recover
    from ccvault.retention.locks import lock_dates
    from ccvault.retention.passes import run_pass

    if not running:
        recover(app.writer, volumes, lock_dates(app.config))  # a crashed pass is finished first
    with progress_bar("purging", as_json) as bar, app.writer.reader() as conn:
        executor = Executor(
            app.writer,
            lambda: volumes,
            app.clock.wall_ms,
            ffmpeg_binary(app.config),
            actor=app.actor(),
            progress=bar,
            lock_until=lock_dates(app.config),
        )
        outcome = run_pass(conn, app.config, volumes, executor, now_ms, spools=spools)
    result = outcome.counts()
    if as_json:
        emit_json(result)
    else:
        click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in result.items()))


def _preview(
    app: App, volumes: list, spools: list, now_ms: int, show_all: bool, as_json: bool
) -> None:
    from ccvault.retention import candidates, spans
    from ccvault.retention.executor import run_order
    from ccvault.retention.passes import expired_access, find_leftovers, plan_pass, totals
    from ccvault.retention.planner import KEEP

    actions, kept = [], {}
    with app.writer.reader() as conn:
        for batch in plan_pass(conn, app.config, volumes, now_ms, include_keeps=show_all):
            actions += run_order(batch)  # batch by batch, as a purge carries them out
            kept.update((d.segment.id, d) for d in batch if d.action == KEEP)
        leftovers = find_leftovers(conn, app.config, volumes, spools, set(), now_ms)
        access_log = expired_access(conn, app.config, now_ms)
        expired = spans.preview(conn, app.config, candidates.protections(conn), now_ms)
    acted = {d.segment.id for d in actions}  # a quota or pressure action overrides a keep
    decisions = actions + sorted(
        (d for i, d in kept.items() if i not in acted),
        key=lambda d: (d.segment.camera, d.segment.start_ms),
    )
    if as_json:
        emit_json(
            {
                "actions": [d.as_json() for d in decisions],
                "totals": totals(decisions),
                "leftovers": leftovers,
                "spans": expired,
                "access_log": access_log.as_json(),
            }
        )
        return
    _show_decisions(decisions, app.config.tz)
    if access_log.events or access_log.visits:
        click.echo(
            f"past access_log_days: {access_log.events} access event(s), "
            f"{access_log.visits} visit(s)"
        )
    if leftovers:
        click.echo(
            f"past the ceiling: {len(leftovers)} quarantined or spool file(s), "
            f"{size_text(sum(i['bytes'] for i in leftovers))}"
        )
    if expired:
        click.echo(
            f"motion spans past the ceiling: {sum(e['spans'] for e in expired)} ("
            + ", ".join(f"{e['camera']} {e['spans']}" for e in expired)
            + ")"
        )


def _show_decisions(decisions: list, tz: ZoneInfo) -> None:
    """The preview's table and its totals per action."""
    from ccvault.retention.passes import totals

    table(
        ["segment", "camera", "start", "end", "action", "rule", "size", "volume", "until"],
        [
            [
                d.segment.id,
                d.segment.camera,
                local_text(d.segment.start_ms, tz),
                local_text(d.segment.end_ms, tz),
                d.action
                + (" (premature)" if d.premature else "")
                + (f" → {d.target}" if d.target else "")
                + (f" ({_lock_words(d)})" if d.waits_for else ""),
                d.rule,
                size_text(d.segment.bytes),
                d.segment.volume,
                local_text(d.until_ms, tz) if d.until_ms else None,
            ]
            for d in decisions
        ],
    )
    for action, t in sorted(totals(decisions)["actions"].items()):
        click.echo(f"{action}: {t['segments']} segments, {size_text(t['bytes'])}")


@cli.command()
@click.option("--camera", required=True, help="Camera name.")
@click.option(
    "--at",
    "at",
    required=True,
    metavar="T",
    help="The instant to explain (e.g. 'yesterday 22:00').",
)
@json_option
@pass_app
def explain(app: App, camera: str, at: str, as_json: bool) -> None:
    """Why the footage at an instant is kept and until when, what will happen to it, or —
    when there is none — why it is gone (exit 3). Another node's camera is explained by that
    node, asked through its API (exit 5 when it cannot be asked now)."""
    from ccvault.views import explain as explanation

    at_ms = app.time(at, "--at")
    now_ms = app.clock.wall_ms()
    with app.writer.reader() as conn:
        owner = explanation.owner_elsewhere(conn, camera, app.config.node.name)
    if owner is not None:  # its node answers: this one's volumes are not looked at
        out = _asked_of(app, owner, camera, at_ms, now_ms)
    else:
        volumes = _volumes(app)
        with app.writer.reader() as conn:
            out = explanation.explain(app.config, conn, volumes, camera, at_ms, now_ms)
    if as_json:
        emit_json(out.as_json())
        return
    tz = app.config.tz
    node = f" (node {out.node})" if out.node != app.config.node.name else ""
    click.echo(
        f"segment {out.segment_id} of {camera}{node}: {local_text(out.start_ms, tz)} – "
        f"{local_text(out.end_ms, tz)} on {out.volume} ({size_text(out.bytes)}, "
        f"{'activity' if out.activity else 'idle' if out.analysed else 'not analysed'})"
    )
    click.echo(_fate(out, tz))
    if out.holds:
        click.echo("holds: " + ", ".join(out.holds))


def _lock_words(d: Decision) -> str:
    """What a deletion waits for: `object lock, compliance`, `legal hold`."""
    if d.waits_for == "legal_hold":
        return "legal hold"
    return f"object lock, {d.segment.lock_mode}"


def _asked_of(app: App, owner: str, camera: str, at_ms: int, now_ms: int) -> ExplanationOut:
    """The owner node's answer (its policy decides, its audit log says what it purged),
    asked with no catalog connection held while it answers."""
    from ccvault.storage import peers
    from ccvault.views.explain import ask

    try:
        with app.writer.reader() as conn:
            remote = peers.Remote.of_node(
                conn, owner, app.config.node.name, now_ms, app.config.tz, f"node {owner}"
            )
        return ask(app.config.node, remote, camera, at_ms)
    except peers.NodeUnavailable as exc:
        raise peers.NodeUnavailable(
            f"camera {camera}",
            f"node {owner} records it and cannot be asked now: {exc.problem}; "
            f"run ccvault explain on node {owner}",
        ) from None


def _fate(out: ExplanationOut, tz: ZoneInfo) -> str:
    """What will happen to the segment, in words: kept until a local date, or the next pass's
    deletion, thinning or move — or a deletion that waits for the object's lock."""
    from ccvault.retention.planner import DELETE, KEEP, THIN, WAIT
    from ccvault.timefmt import utc_text

    rule = f"(rule: {out.rule})"
    if out.action == WAIT and out.until_ms is not None:
        return (
            f"kept until {local_text(out.until_ms, tz)}: object locked "
            f"({out.lock_mode}) until {utc_text(out.until_ms)}; then deleted "
            f"by the next retention pass {rule}"
        )
    if out.action == WAIT:
        return (
            "kept with no end date: its object is under an S3 legal hold (its release not on "
            f"the object yet); then deleted by the next retention pass {rule}"
        )
    if out.action == KEEP and out.until_ms is not None:
        return f"kept until {local_text(out.until_ms, tz)} {rule}; then the policy decides again"
    if out.action == KEEP:
        return f"kept with no end date {rule}"
    if out.action == DELETE:
        return f"to be deleted by the next retention pass {rule}"
    if out.action == THIN:
        return f"to be thinned (keyframes only) by the next retention pass {rule}"
    return f"to be moved to {out.target} by the next retention pass {rule}"


@cli.group()
def hold() -> None:
    """Keep footage beyond any policy (incidents, legal requests) until released."""


@hold.command("add")
@click.option("--camera", "cameras", multiple=True, help="Camera (repeat; default: all).")
@click.option("--from", "from_", required=True, metavar="T", help="Start of the held range.")
@click.option("--to", "to", required=True, metavar="T", help="End of the held range.")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@click.option("--until", metavar="T", help="The hold ends by itself at T (default: never).")
@pass_app
def hold_add(
    app: App, cameras: tuple[str, ...], from_: str, to: str, reason: str, until: str | None
) -> None:
    """Hold footage; prints the new hold's id alone."""
    from ccvault.retention import holds

    hold_id = holds.add(
        app.writer,
        app.config,
        cameras,
        app.time(from_, "--from"),
        app.time(to, "--to"),
        reason,
        app.time(until, "--until") if until else None,
        app.actor(),
        app.clock.wall_ms(),
    )
    click.echo(hold_id)


@hold.command("list")
@json_option
@pass_app
def hold_list(app: App, as_json: bool) -> None:
    """Every hold, active or not."""
    from ccvault.retention import holds

    with app.reader() as conn:
        rows = holds.listing(conn, app.clock.wall_ms())
    if as_json:
        emit_json(rows)
        return
    tz = app.config.tz
    table(
        ["id", "state", "cameras", "from", "to", "until", "reason"],
        [
            [
                h["id"],
                h["state"],
                ",".join(h["cameras"]) or "all",
                local_text(h["from_ms"], tz),
                local_text(h["to_ms"], tz),
                h["until_ms"] and local_text(h["until_ms"], tz),
                h["reason"],
            ]
            for h in rows
        ],
    )


@hold.command("release")
@click.argument("hold_id", type=int)
@click.option("--reason", required=True, help="Why the hold ends (audit log).")
@pass_app
def hold_release(app: App, hold_id: int, reason: str) -> None:
    """End a hold; its footage follows the policy again."""
    from ccvault.retention import holds

    holds.release(app.writer, hold_id, reason, app.actor(), app.clock.wall_ms(), app.config)
    click.echo(f"hold {hold_id}: released")


@hold.command("rebuild")
@click.option("--dry-run", is_flag=True, help="Show what would be restored.")
@click.option(
    "--until-seq",
    type=click.IntRange(min=0),
    metavar="N",
    help="Replay records up to seq N only: to rebuild from the records before a break that "
    "`audit verify` reports.",
)
@json_option
@pass_app
def hold_rebuild(app: App, dry_run: bool, until_seq: int | None, as_json: bool) -> None:
    """Restore holds from the audit log (after restoring an older catalog); the chain is
    verified first, and a forged or unvouched line is never replayed (exit 1 naming it)."""
    from ccvault.catalog.audit_verify import verifier
    from ccvault.retention import holds

    writer = app.writer
    assert writer.audit_log is not None
    restored = holds.rebuild(
        writer,
        verifier(writer.audit_log, writer.audit_chain.head),
        app.actor(),
        app.clock.wall_ms(),
        dry_run,
        until_seq,
    )
    if as_json:
        emit_json(restored)
    else:
        click.echo(f"{len(restored)} change(s){' would be' if dry_run else ''} restored")
    if restored and dry_run:
        sys.exit(1)
