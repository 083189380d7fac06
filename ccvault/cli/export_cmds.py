"""Commands about evidence: export (a signed bundle), verify-export, signing-key."""

from __future__ import annotations

import base64
import sys
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import click

from ccvault.cli import App, cli, json_option, pass_app
from ccvault.cli.output import emit_json, progress_bar, table
from ccvault.errors import CHECK_FAILED, CcvaultError, NotFound, Refused, UsageError
from ccvault.host.progress import fractions
from ccvault.text import size_text
from ccvault.timefmt import local_text

OPTION_FIELDS = ("camera", "from", "to", "out", "reason", "visit")


def _as_option(exc: CcvaultError) -> CcvaultError:
    """The library names request fields (`to`); the CLI names its options (`--to`)."""
    if exc.what in OPTION_FIELDS:
        return type(exc)(f"--{exc.what}", exc.problem)
    return exc


@cli.command()
@click.option("--camera", help="Camera name.")
@click.option("--from", "start", metavar="T", help="Range start (inclusive).")
@click.option("--to", "end", metavar="T", help="Range end (exclusive).")
@click.option(
    "--visit",
    type=click.IntRange(1, 2**63 - 1),  # SQLite's INTEGER
    metavar="ID",
    help="Export a visit instead: its room's cameras over the visit, padded by [access] "
    "padding_seconds, with the room's door events in the signed manifest.",
)
@click.option(
    "--out",
    "out",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="The new bundle directory, inside [export] dir or an allowed_dirs entry "
    "(with --visit: optional, else one in [export] dir).",
)
@click.option("--reason", required=True, help="Why (in the manifest and the audit log).")
@json_option
@pass_app
def export(
    app: App,
    camera: str | None,
    start: str | None,
    end: str | None,
    visit: int | None,
    out: Path | None,
    reason: str,
    as_json: bool,
) -> None:
    """Write an evidence bundle of [--from, --to) to DIR: the original segments untouched, one
    joined clip, manifest.json (sizes, SHA-256s, times, who and why) and its Ed25519
    signature. The footage is pinned while it runs; check it with `ccvault verify-export`.
    With --visit ID instead of --camera/--from/--to: every camera of the visit's room in one
    bundle, the visit and its room's door events in the manifest."""
    from ccvault.evidence.jobs import ExportJobs
    from ccvault.recorder.ffmpeg import ffmpeg_binary
    from ccvault.storage.volumes import open_volumes

    _check_request(camera, start, end, visit, out)
    volumes = open_volumes(app.config, app.writer, app.clock.wall_ms())
    jobs = ExportJobs(
        app.config,
        app.writer,
        lambda: volumes,
        app.clock,
        ffmpeg_binary(app.config),
        actor=app.actor(),
    )

    def started(export_id: int) -> None:
        if not as_json:
            click.echo(f"export {export_id}: writing {out or 'into [export] dir'}", err=True)

    if visit is not None:
        run = partial(jobs.export_visit_now, visit, reason, app.actor(), out)
    else:
        assert camera is not None and start is not None and end is not None
        from_ms, to_ms = app.time(start, "--from"), app.time(end, "--to")
        run = partial(jobs.export_now, camera, from_ms, to_ms, reason, app.actor(), out)
    try:
        with progress_bar("exporting", as_json) as bar:
            result = run(progress=fractions(bar), started=started)
    except CcvaultError as exc:
        raise _as_option(exc) from None
    _show(result, as_json)


def _check_request(
    camera: str | None, start: str | None, end: str | None, visit: int | None, out: Path | None
) -> None:
    """A camera's range (--camera, --from, --to, --out) or a visit (--visit), never both:
    usage errors name the option."""
    given = {"--camera": camera, "--from": start, "--to": end}
    if visit is not None:
        mixed = [name for name, value in given.items() if value is not None]
        if mixed:
            raise UsageError(mixed[0], "give --visit or --camera/--from/--to, not both")
        return
    for name, value in (*given.items(), ("--out", out)):
        if value is None:
            raise UsageError(name, "missing (or give --visit ID)")


def _show(result: dict[str, Any], as_json: bool) -> None:
    summary = {
        "id": result["id"],
        "state": result["state"],
        "dir": result["dir"],
        "manifest_sha256": result["manifest_sha256"],
        "actual": result.get("actual"),
        "requested": {"from": result["from"], "to": result["to"]},
        "visit": result["visit"],
        "cameras": result["cameras"],
        "files": result.get("files", []),
    }
    if as_json:
        emit_json(summary)
        return
    files = summary["files"]
    click.echo(f"export {summary['id']}: {summary['dir']}")
    click.echo(
        f"  {len(files)} files, {size_text(sum(f['bytes'] for f in files))}; clip "
        f"{summary['actual']['from']} – {summary['actual']['to']}"
    )
    click.echo(f"  manifest SHA-256 {summary['manifest_sha256']}")


@cli.command("exports")
@click.option(
    "--limit",
    type=click.IntRange(1, 1_000_000),
    default=200,
    show_default=True,
    help="The newest this many.",
)
@click.option(
    "--verify",
    "check",
    is_flag=True,
    help="First re-check every bundle this node still keeps, file by file (as "
    "verify-export does, against this installation's key), and record the result on its "
    "export (audited export.verify). Exit 1 when one fails.",
)
@json_option
@pass_app
def exports(app: App, limit: int, check: bool, as_json: bool) -> None:
    """Every evidence export, newest first, from the catalog: who exported which cameras and
    range, when and why, where the bundle is (its name, the node whose disks hold it), its
    state, and its verification — the manifest's SHA-256 recorded when it finished, whether
    the manifest on disk still has it, and the last full check (--verify). The exports' rows
    outlive their bundles, which expire after [export] keep_days."""
    from ccvault.evidence.jobs import check_bundles, list_jobs

    failed = []
    if check:
        with progress_bar("verifying exports", as_json) as bar:
            checked = check_bundles(
                app.config, app.writer, app.actor(), app.clock.wall_ms, progress=bar
            )
        failed = [j["id"] for j in checked if j["verification"]["state"] != "verified"]
    with app.reader() as conn:
        jobs = list_jobs(conn, app.config.node.name, limit)
    if as_json:
        emit_json(jobs)
    elif not jobs:
        click.echo("no exports yet")
    else:
        _exports_table(jobs, app.config.tz)
    if failed:
        click.echo(
            f"exports: {len(failed)} bundle(s) failed the check: " + ", ".join(map(str, failed)),
            err=True,
        )
        sys.exit(CHECK_FAILED)


def _exports_table(jobs: list[dict[str, Any]], tz: Any) -> None:
    """One line per export, in the site's zone; the verification's own words last."""

    def local(text: str | None) -> str | None:
        if text is None:
            return None
        return local_text(round(datetime.fromisoformat(text).timestamp() * 1000), tz)

    rows = []
    for j in jobs:
        check = j["verification"]
        verdict = check["state"].replace("_", " ")
        if check["state"] in ("verified", "failed") and check["checked"]:
            verdict += f" {local(check['checked'])}"
        if check["problem"]:
            verdict += f": {check['problem']}"
        what = ",".join(j["cameras"]) + (f" (visit {j['visit']})" if j["visit"] else "")
        rows.append(
            [
                j["id"],
                local(j["created"]),
                j["actor"],
                what,
                f"{local(j['from'])} – {local(j['to'])}",
                j["reason"],
                j["state"] if j["state"] != "failed" else f"failed: {j['error']}",
                f"{j['node'] + ':' if j['node'] else ''}{j['bundle']}",
                (j["manifest_sha256"] or "-")[:16],
                verdict,
            ]
        )
    table(
        [
            "ID",
            "CREATED",
            "BY",
            "CAMERAS",
            "RANGE",
            "REASON",
            "STATE",
            "BUNDLE",
            "MANIFEST",
            "VERIFICATION",
        ],
        rows,
    )


@cli.command("verify-export")
@click.argument(
    "directory", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--key",
    metavar="PUBKEY",
    help="Trust this signer: a PEM file, or the raw public key in base64 or hex.",
)
@click.option(
    "--fingerprint",
    metavar="F",
    help="Trust the key with this fingerprint (64 hex digits, as `ccvault signing-key` "
    "prints it at the installation that made the bundle).",
)
@json_option
@pass_app
def verify_export(
    app: App, directory: Path, key: str | None, fingerprint: str | None, as_json: bool
) -> None:
    """Re-check a bundle: every file's size and SHA-256 against the manifest, no file missing
    or extra, footage present, the signatures, and that the signer is a key you trust (--key,
    --fingerprint, or else this installation's own when a config is found). Exit 1 naming the
    first problem — also when no trusted key is known: a signature alone proves nothing, since
    anyone can re-sign an edited bundle with a key of their own."""
    from ccvault.evidence.verify import verify

    trusted, source = _trusted_key(app, key, fingerprint)
    result = verify(directory, trusted)
    if as_json:
        emit_json({**result.as_json(), "trusted_key_source": source})
    else:
        for problem in result.problems:
            click.echo(f"verify-export: {problem}")
        _show_visit(result.visit, result.access_events)
        if result.ok:
            click.echo(f"{directory}: ok, {result.files} files match the signed manifest")
        if result.signed_by:
            click.echo(f"signed by key {result.signed_by}")
        if trusted is None:
            click.echo(f"signer: not checked ({source})")
        elif result.signed_by == trusted:
            click.echo(f"signer: the expected key ({source})")
    if not result.ok:
        sys.exit(CHECK_FAILED)


def _show_visit(visit: dict[str, Any] | None, events: list[Any] | None) -> None:
    """A visit bundle's visit and door events, as its manifest says them (checked or not:
    the lines above say whether the signature holds)."""
    from ccvault.evidence.verify import shown

    if not isinstance(visit, dict):
        return
    flags = ", ".join(map(str, visit.get("flags") or [])) or "none"
    escorts = ", ".join(map(str, visit.get("escorted_by") or [])) or "nobody"
    click.echo(
        f"visit {shown(visit.get('id'))}: {shown(visit.get('person'))} "
        f"({shown(visit.get('role'))}) in {shown(visit.get('room'))}, entered "
        f"{shown(visit.get('entered'))}, left {shown(visit.get('left'))}; escorted by "
        f"{shown(escorts)}; flags {shown(flags)}"
    )
    listed = events if isinstance(events, list) else []
    click.echo(f"door events: {len(listed)}")
    for e in (e for e in listed if isinstance(e, dict)):
        fields = ("time", "door", "person", "role", "direction", "result", "id")
        click.echo("  " + "  ".join(shown(e.get(k)) for k in fields))


def _trusted_key(app: App, key: str | None, fingerprint: str | None) -> tuple[str | None, str]:
    """The fingerprint of the key the checker trusts, and where it came from; (None, why)
    when there is none — which the check then reports as a failure, never as "ok"."""
    from ccvault.evidence import signing

    if key is not None and fingerprint is not None:
        raise UsageError("--fingerprint", "give --key or --fingerprint, not both")
    if key is not None:
        return signing.fingerprint(signing.parse_public_key(key)), "--key"
    if fingerprint is not None:
        return signing.parse_fingerprint(fingerprint), "--fingerprint"
    if not (app.config_named or app.config_path.exists()):
        return None, "no config found, and no --key or --fingerprint"
    try:
        raw = signing.installation_public_key(app.config.signing_key_path)
    except PermissionError:
        return None, f"cannot read {app.config.signing_key_path} (pass --fingerprint)"
    if raw is None:
        return None, "this installation has no signing key yet"
    return signing.fingerprint(raw), "this installation's"


@cli.command("signing-key")
@json_option
@pass_app
def signing_key(app: App, as_json: bool) -> None:
    """This installation's public key for export manifests, and its fingerprint as the audit
    log shows it: hand the fingerprint to whoever receives bundles, separately from them, for
    `verify-export --fingerprint` or the bundle's README."""
    from ccvault.evidence.signing import fingerprint, installation_public_key

    path = app.config.signing_key_path
    try:
        raw = installation_public_key(path)
    except PermissionError:
        raise Refused(f"signing key {path}", "cannot read it (run as the daemon's user)") from None
    if raw is None:
        raise NotFound(
            f"signing key {path}", "not made yet (made at the first daemon start or export)"
        )
    out = {
        "algorithm": "Ed25519",
        "public_key": base64.b64encode(raw).decode(),
        "public_key_hex": raw.hex(),
        "fingerprint": fingerprint(raw),
    }
    if as_json:
        emit_json(out)
        return
    for name, value in out.items():
        click.echo(f"{name}: {value}")
