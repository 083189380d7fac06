"""Evidence export end to end: real segments (keyframe every 1 s), real ffmpeg, the real CLI,
the real HTTP API on loopback; every bundle re-checked by `ccvault verify-export`."""

from __future__ import annotations

import base64
import filecmp
import hashlib
import io
import json
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ccvault.catalog.audit import AuditLog, audit_log
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.evidence.jobs import ExportJobs
from ccvault.host.clock import SystemClock
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.storage.volumes import open_volumes
from ccvault.timefmt import utc_text
from tests.api_peer import serve
from tests.conftest import run_cli, wait_for, write_config
from tests.retention_seed import seed

SEGMENT_MS = 4000


@dataclass
class Site:
    root: Path
    config: Path
    base_ms: int  # start of the first of 6 contiguous 4 s segments
    exports: Path
    share: Path

    def at(self, seconds: float) -> str:
        return utc_text(self.base_ms + round(seconds * 1000))

    def catalog(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.root / "catalog.sqlite")
        conn.row_factory = sqlite3.Row
        return conn

    def audit(self, action: str) -> list[dict[str, Any]]:
        return [r for r in AuditLog(self.root / "audit.jsonl").records() if r["action"] == action]

    def jobs(self) -> tuple[ExportJobs, CatalogWriter]:
        config = load(self.config).config
        writer = CatalogWriter(config.catalog_target, audit_log(config))
        clock = SystemClock()
        volumes = open_volumes(config, writer, clock.wall_ms())
        return ExportJobs(config, writer, lambda: volumes, clock, ffmpeg_binary(config)), writer


def make_site(root: Path, segments: int = 6) -> Site:
    config = write_config(
        root,
        [{"name": "door", "url": "demo://", "enabled": False}],
        volumes=[
            {
                "name": "hot",
                "path": str(root / "hot"),
                "role": "hot",
                "reserve_free_bytes": 0,
                "reserve_free_percent": 0,
            }
        ],
    )
    share = root / "share"
    share.mkdir()
    config.write_text(
        config.read_text() + f'\n[export]\nallowed_dirs = ["{share}"]\n'
        "max_hours = 1\nkeep_days = 1\n"
    )
    base = int(time.time() * 1000) - 2 * 3_600_000
    seed(
        config,
        [
            {"camera": "door", "start_ms": base + i * SEGMENT_MS, "seconds": 4}
            for i in range(segments)
        ],
        root / "cache",
    )
    return Site(root, config, base, root / "exports", share)


def export_cli(
    site: Site, camera: str, start: str, end: str, out: Path | str, reason: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`ccvault export` of one camera's range into `out`, as an operator types it."""
    return run_cli(site.config, "export", "--camera", camera, "--from", start, "--to", end,
                   "--out", str(out), "--reason", reason, *extra)  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return make_site(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def bundle(site: Site) -> tuple[Path, dict[str, Any]]:
    """One CLI export of [2.5 s, 17.5 s): five segments, the clip from the keyframe at 2 s."""
    out = site.exports / "incident-42"
    result = export_cli(site, "door", site.at(2.5), site.at(17.5), out, "incident 42", "--json")
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout)


def verify(site: Site | None, path: Path, *extra: str) -> Any:
    return run_cli(
        site.config if site else None,
        "verify-export",
        str(path),
        *extra,
        env={"CCVAULT_CONFIG": ""},
    )


def test_bundle_holds_the_originals_a_clip_and_a_signed_manifest(site, bundle) -> None:
    out, result = bundle
    manifest = json.loads((out / "manifest.json").read_bytes())
    with site.catalog() as conn:
        rows = {
            r["id"]: r
            for r in conn.execute("SELECT s.id, s.sha256, s.bytes, s.path FROM segments s")
        }
        job = conn.execute("SELECT * FROM exports WHERE id = ?", (result["id"],)).fetchone()
        assert conn.execute("SELECT COUNT(*) FROM export_pins").fetchone()[0] == 0
    assert job["state"] == "done" and job["pin_id"] is None and job["progress"] == 1
    originals = [f for f in manifest["files"] if f["name"].startswith("segments/")]
    assert [f["segment_id"] for f in originals] == [1, 2, 3, 4, 5]
    for entry in originals:
        row = rows[entry["segment_id"]]
        copy = out / entry["name"]
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == row["sha256"] == entry["sha256"]
        assert filecmp.cmp(copy, site.root / "hot" / row["path"], shallow=False)
    with av.open(str(out / "clip.mp4")) as clip:
        duration = float(clip.duration) / av.time_base
    assert abs(duration - 15.0) <= 1.0, duration  # keyframes every second
    assert manifest["actual"]["from"] == site.at(2.0) == result["actual"]["from"]
    assert manifest["requested"] == {
        "from": site.at(2.5),
        "to": site.at(17.5),
        "from_ms": site.base_ms + 2500,
        "to_ms": site.base_ms + 17500,
    }
    for key in (
        "camera",
        "timezone",
        "ccvault_version",
        "host",
        "operator",
        "reason",
        "created",
        "gaps",
        "catalog_id",
    ):
        assert manifest[key] not in (None, ""), key
    assert manifest["reason"] == "incident 42" and manifest["operator"].startswith("cli:")
    assert manifest["clock"]["ntp_synchronized"] in (True, False, "unknown")
    listed = {f["name"] for f in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == listed | {
        "manifest.json",
        "manifest.sig",
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "signer.pem",
        "README.txt",
    }
    assert {f["origin"] for f in originals} == {"imported"}  # seeded as imported footage
    # The key: made once, private, its fingerprint in the audit log and every export record.
    key_path = site.root / "signing-key.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    created = site.audit("signing.key_created")
    assert len(created) == 1
    fingerprint = created[0]["details"]["fingerprint"]
    raw = base64.b64decode(manifest["signature"]["public_key"])
    assert hashlib.sha256(raw).hexdigest() == fingerprint
    manifest_sha = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert result["manifest_sha256"] == manifest_sha
    start = [r for r in site.audit("export.start") if r["details"]["id"] == result["id"]]
    done = [r for r in site.audit("export.done") if r["details"]["id"] == result["id"]]
    assert start[0]["details"]["reason"] == "incident 42"
    assert start[0]["details"]["dir"] == str(out)
    assert done[0]["details"]["manifest_sha256"] == manifest_sha
    assert done[0]["details"]["camera"] == "door"
    assert {start[0]["details"]["key_fingerprint"], done[0]["details"]["key_fingerprint"]} == {
        fingerprint
    }
    ok = verify(site, out)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok, 6 files" in ok.stdout and "this installation's" in ok.stdout


def _flip(path: Path, at: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _resign(bundle: Path) -> str:
    """What a forger would do: edit the manifest, sign it with their own key, swap the key."""
    forger = Ed25519PrivateKey.generate()
    raw = forger.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest["reason"] = "something else"
    manifest["signature"]["public_key"] = base64.b64encode(raw).decode()
    body = json.dumps(manifest, indent=2).encode() + b"\n"
    (bundle / "manifest.json").write_bytes(body)
    (bundle / "manifest.sig").write_bytes(forger.sign(body))
    return raw.hex()


def _segment(bundle: Path) -> Path:
    return sorted((bundle / "segments").iterdir())[1]


@pytest.mark.parametrize(
    "tamper, problem",
    [
        (lambda b: _flip(_segment(b)), "SHA-256 differs from the manifest"),
        (lambda b: _flip(b / "clip.mp4", 5000), "clip.mp4: SHA-256 differs"),
        (
            lambda b: (b / "manifest.json").write_bytes(
                (b / "manifest.json").read_bytes().replace(b'"incident 42"', b'"incident 43"')
            ),
            "manifest.sig: the signature does not match",
        ),
        (lambda b: _segment(b).unlink(), "missing from the bundle"),
        (lambda b: (b / "segments" / "extra.mp4").write_bytes(b"x"), "extra file"),
        (_resign, "signer: signed by an unknown key"),
    ],
)
def test_verify_names_what_was_changed(site, bundle, tmp_path, tamper, problem) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle[0], copy)
    tamper(copy)
    result = verify(site, copy)
    assert result.returncode == 1, result.stdout
    first = result.stdout.splitlines()[0]
    assert problem in first, result.stdout


def test_a_resigned_manifest_passes_only_for_whoever_trusts_its_key(site, bundle, tmp_path) -> None:
    """Alone, a signature proves the bundle is unchanged since *someone* signed it, so without
    a trusted key nothing verifies; the installation key (the default with a config), --key
    or --fingerprint says *who*. (The rest of the forger's work is tests/security.)"""
    copy = tmp_path / "bundle"
    shutil.copytree(bundle[0], copy)
    forger_hex = _resign(copy)
    alone = verify(None, copy)
    assert alone.returncode == 1 and "signer: not checked" in alone.stdout, alone.stdout
    assert verify(None, bundle[0]).returncode == 1
    trusting_the_forger = verify(None, copy, "--key", forger_hex)
    assert "signer: the expected key (--key)" in trusting_the_forger.stdout
    own_key = str(site.root / "signing-key.pem")
    assert verify(None, copy, "--key", own_key).returncode == 1
    assert verify(None, bundle[0], "--key", own_key).returncode == 0


def test_a_bundle_of_format_1_still_verifies(site, bundle, tmp_path) -> None:
    """Bundles handed out before SHA256SUMS and the README (format 1) keep verifying; their
    format is in the signed manifest, so nobody can strip a newer bundle down to one."""
    old = tmp_path / "old"
    shutil.copytree(bundle[0], old)
    for name in ("SHA256SUMS", "SHA256SUMS.sig", "signer.pem", "README.txt"):
        (old / name).unlink()
    manifest = json.loads((old / "manifest.json").read_bytes())
    manifest["format"] = "ccvault-evidence/1"
    for entry in manifest["files"]:
        entry.pop("origin", None)
    key = serialization.load_pem_private_key(
        (site.root / "signing-key.pem").read_bytes(), password=None
    )
    body = json.dumps(manifest, indent=2).encode() + b"\n"
    (old / "manifest.json").write_bytes(body)
    (old / "manifest.sig").write_bytes(key.sign(body))  # as an older ccvault signed it
    result = verify(site, old)
    assert result.returncode == 0, result.stdout
    stripped = tmp_path / "stripped"  # a format-2 bundle without its receiver files
    shutil.copytree(bundle[0], stripped)
    (stripped / "SHA256SUMS").unlink()
    assert "SHA256SUMS: missing" in verify(site, stripped).stdout


def test_destinations_outside_the_export_dirs_are_refused(site, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (site.share / "link").symlink_to(outside)
    (site.exports / "taken").mkdir(parents=True)
    refused = [
        outside / "b",
        site.exports / ".." / "escape",
        site.share / "link" / "b",
        f"{site.share}/../../{tmp_path.name}/b",
        site.exports,
        site.exports / "taken",
    ]
    for out in refused:
        result = export_cli(site, "door", site.at(0), site.at(8), out, "r")
        assert result.returncode == 4, (out, result.stderr)
        assert "ccvault: error: --out:" in result.stderr, result.stderr
    assert not list(outside.iterdir())
    long = export_cli(site, "door", "-3h", "now", site.exports / "long", "r")
    assert long.returncode == 4 and "--to:" in long.stderr and "max_hours" in long.stderr
    unknown = export_cli(site, "gate", site.at(0), site.at(8), site.exports / "g", "r")
    assert unknown.returncode == 3, unknown.stderr
    with site.catalog() as conn:  # nothing refused was recorded or pinned
        assert conn.execute("SELECT COUNT(*) FROM export_pins").fetchone()[0] == 0


def test_the_pin_keeps_the_footage_while_the_job_runs(site) -> None:
    jobs, writer = site.jobs()
    try:
        export_id = jobs.prepare(
            "door", site.base_ms + 8000, site.base_ms + 16000, "pinned", "test"
        )
        plan = json.loads(run_cli(site.config, "purge", "--dry-run", "--all", "--json").stdout)
        rules = {a["segment_id"]: a["rule"] for a in plan["actions"]}
        assert rules[3] == rules[4] == "export_pin", rules
        assert rules[1] != "export_pin" and rules[6] != "export_pin"
        seen = []

        def pins(_fraction: float) -> None:
            with site.catalog() as conn:
                seen.append(conn.execute("SELECT COUNT(*) FROM export_pins").fetchone()[0])

        job = jobs.run(export_id, progress=pins)
        assert job["state"] == "done" and not job["pinned"]
        assert seen and set(seen) == {1}
        with site.catalog() as conn:
            assert conn.execute("SELECT COUNT(*) FROM export_pins").fetchone()[0] == 0
        plan = json.loads(run_cli(site.config, "purge", "--dry-run", "--all", "--json").stdout)
        assert "export_pin" not in {a["rule"] for a in plan["actions"]}
    finally:
        jobs.stop()
        writer.close()


def test_a_copy_that_differs_from_the_catalog_fails_the_export(tmp_path) -> None:
    site = make_site(tmp_path, segments=3)
    with site.catalog() as conn:
        path = conn.execute("SELECT path FROM segments WHERE id = 2").fetchone()[0]
    _flip(site.root / "hot" / path)
    out = site.exports / "broken"
    result = export_cli(site, "door", site.at(0), site.at(12), out, "r")
    assert result.returncode == 1 and "segment 2" in result.stderr, result.stderr
    assert not out.exists() and not list(site.exports.glob(".*"))  # no half bundle anywhere
    with site.catalog() as conn:
        job = conn.execute("SELECT state, error, pin_id FROM exports").fetchone()
        assert conn.execute("SELECT COUNT(*) FROM export_pins").fetchone()[0] == 0
    assert job["state"] == "failed" and "catalog" in job["error"] and job["pin_id"] is None
    assert site.audit("export.failed")[0]["details"]["camera"] == "door"


def test_resume_redoes_an_interrupted_job_and_expiry_spares_allowed_dirs(site) -> None:
    jobs, writer = site.jobs()
    try:
        export_id = jobs.prepare("door", site.base_ms, site.base_ms + 8000, "crash", "test")
        final = Path(jobs.get(export_id)["dir"])
        partial = final.with_name(f".{final.name}.partial")
        (partial / "segments").mkdir(parents=True)
        (partial / "segments" / "junk.mp4").write_bytes(b"half")
        assert writer.exports.start(export_id)  # as if a daemon died while running it
    finally:
        writer.close()
    jobs, writer = site.jobs()  # the next daemon start
    try:
        assert jobs.resume() == [export_id]
        job = wait_for(
            lambda: (j := jobs.get(export_id))["state"] in ("done", "failed") and j,
            30,
            what="the resumed export",
        )
        assert job["state"] == "done", job
        assert not partial.exists() and verify(site, final).returncode == 0
        shared = export_cli(
            site, "door", site.at(0), site.at(4), site.share / "court", "handed over"
        )
        assert shared.returncode == 0, shared.stderr
        old = time.time_ns() // 1_000_000 - 2 * 86_400_000
        with writer.transaction() as conn:
            conn.execute("UPDATE exports SET finished_ms = ? WHERE state = 'done'", (old,))
        expired = jobs.purge_expired(time.time_ns() // 1_000_000)
        gone = {Path(e["dir"]) for e in expired}
        assert final in gone and not final.exists()
        assert (site.share / "court" / "manifest.json").exists()  # not ours to delete
        assert all(p.is_relative_to(site.exports) for p in gone)
        assert {r["details"]["id"] for r in site.audit("export.expired")} >= {export_id}
        assert jobs.purge_expired(time.time_ns() // 1_000_000) == []
    finally:
        jobs.stop()
        writer.close()


def test_api_export_poll_download_verify(site, tmp_path) -> None:
    jobs, writer = site.jobs()
    try:
        with serve(site.config, exports=jobs) as api:
            body = {"camera": "door", "from": site.at(4), "to": site.at(12), "reason": "api"}
            with api.client("viewer") as viewer:
                assert viewer.post("/api/exports", json=body).status_code == 403
            with api.client("operator") as op:
                aimed = op.post("/api/exports", json={**body, "out": "/tmp/x"})
                assert aimed.status_code == 403 and aimed.json()["error"]["field"] == "out"
                long = op.post("/api/exports", json={**body, "from": "-3h", "to": "now"})
                assert long.status_code == 409 and long.json()["error"]["field"] == "to"
                gate = op.post("/api/exports", json={**body, "camera": "gate"})
                assert gate.status_code == 404 and gate.json()["error"]["field"] == "camera"
                waiting = jobs.prepare(
                    "door", site.base_ms, site.base_ms + 4000, "queued", "test"
                )  # recorded, not run: as if behind others
                assert op.get(f"/api/exports/{waiting}/download").status_code == 409
                made = op.post("/api/exports", json=body)
                assert made.status_code == 202, made.text
                export_id = made.json()["id"]
                assert made.json()["state"] == "queued"
                assert "dir" not in made.json()
                job = wait_for(
                    lambda: (
                        (j := op.get(f"/api/exports/{export_id}").json())["state"]
                        in ("done", "failed")
                        and j
                    ),
                    30,
                    what="the API export",
                )
                assert job["state"] == "done" and job["progress"] == 1, job
                assert job["bundle"].startswith(f"{export_id}-door-")
                tar = op.get(f"/api/exports/{export_id}/download")
                assert tar.status_code == 200
                assert int(tar.headers["content-length"]) == len(tar.content)
                with viewer_client(api) as viewer:
                    assert viewer.get(f"/api/exports/{export_id}").status_code == 403
        with tarfile.open(fileobj=io.BytesIO(tar.content)) as archive:
            archive.extractall(tmp_path, filter="data")
        extracted = tmp_path / job["bundle"]
        check = verify(site, extracted)
        assert check.returncode == 0, check.stdout
        assert (site.exports / job["bundle"]).is_dir()
        start = [r for r in site.audit("export.start") if r["details"]["id"] == export_id]
        assert start[0]["actor"].startswith("api:operator")
        assert [r for r in site.audit("export.done") if r["details"]["id"] == export_id]
        assert [r for r in site.audit("export.download") if r["details"]["id"] == export_id]
    finally:
        jobs.stop()
        writer.close()


def viewer_client(api: Any) -> Any:
    return api.client("viewer")


def test_a_crash_after_the_rename_is_adopted_and_a_stranger_is_never_overwritten(site) -> None:
    jobs, writer = site.jobs()
    try:
        first = jobs.prepare("door", site.base_ms, site.base_ms + 4000, "adopt", "test")
        done = jobs.run(first)
        manifest = (Path(done["dir"]) / "manifest.json").read_bytes()
        with writer.transaction() as conn:  # as if the process died before marking it done
            conn.execute("UPDATE exports SET state = 'running' WHERE id = ?", (first,))
        assert jobs.run(first)["state"] == "done"
        assert (Path(done["dir"]) / "manifest.json").read_bytes() == manifest
        second = jobs.prepare("door", site.base_ms, site.base_ms + 4000, "stranger", "test")
        stranger = Path(jobs.get(second)["dir"])
        stranger.mkdir()
        (stranger / "notes.txt").write_text("someone else's")
        with pytest.raises(Exception, match="exists already"):
            jobs.run(second)
        assert jobs.get(second)["state"] == "failed" and not jobs.get(second)["pinned"]
        assert (stranger / "notes.txt").read_text() == "someone else's"
    finally:
        jobs.stop()
        writer.close()


def test_the_exports_list_says_who_what_when_why_where_and_whether_it_still_verifies(
    tmp_path: Path,
) -> None:
    """`GET /api/exports` and `ccvault exports`: an export made through the API and one made by
    the CLI are both listed by a freshly started server (the catalog, not a job in memory),
    with the manifest's SHA-256 recorded when each finished; `--verify` checks every file and
    records the result; a bundle changed afterwards is listed as such and fails the check."""
    site = make_site(tmp_path)
    cli_out = site.exports / "incident-7"
    made = export_cli(site, "door", site.at(0), site.at(8), cli_out, "incident 7", "--json")
    assert made.returncode == 0, made.stderr
    cli_export = json.loads(made.stdout)
    jobs, writer = site.jobs()
    try:
        with serve(site.config, exports=jobs) as api, api.client("operator") as op:
            body = {"camera": "door", "from": site.at(8), "to": site.at(16), "reason": "api 8"}
            api_id = op.post("/api/exports", json=body).json()["id"]
            wait_for(
                lambda: op.get(f"/api/exports/{api_id}").json()["state"] == "done",
                30,
                what="the API export",
            )
    finally:
        jobs.stop()
        writer.close()

    # A new server, with no export jobs running in it: the list comes from the catalog.
    with serve(site.config) as api:
        with api.client("viewer") as viewer:
            assert viewer.get("/api/exports").status_code == 403  # as the other export routes
        with api.client("operator") as op:
            listed = op.get("/api/exports")
            assert listed.status_code == 200, listed.text
            assert op.get("/api/exports", params={"limit": 0}).status_code in (400, 422)
            assert [j["id"] for j in op.get("/api/exports", params={"limit": 1}).json()] == [api_id]
    newest, oldest = listed.json()
    assert (newest["id"], oldest["id"]) == (api_id, cli_export["id"])  # newest first
    assert newest["actor"].startswith("api:operator") and newest["reason"] == "api 8"
    assert newest["cameras"] == ["door"] and newest["from"] == site.at(8)
    assert newest["state"] == "done" and newest["available"] and "dir" not in newest
    assert oldest["bundle"] == "incident-7" and oldest["reason"] == "incident 7"
    assert oldest["manifest_sha256"] == cli_export["manifest_sha256"]
    for job in (newest, oldest):
        assert job["verification"] == {
            "state": "unchecked",
            "manifest_matches": True,
            "checked": None,
            "problem": None,
        }
    looked = [r for r in site.audit("export.list") if r["actor"].startswith("api:operator")]
    assert looked and looked[0]["details"]["results"] == 2

    # The CLI: a table for people (times in the site's zone), stable JSON, --verify.
    text = run_cli(site.config, "exports")
    assert text.returncode == 0, text.stderr
    header, *lines = text.stdout.splitlines()
    assert header.split()[:4] == ["ID", "CREATED", "BY", "CAMERAS"]
    assert len(lines) == 2 and "incident 7" in lines[1]
    assert "incident-7" in lines[1] and cli_export["manifest_sha256"][:16] in lines[1]
    assert "manifest unchanged" not in text.stdout and "unchecked" in lines[1]
    checked = run_cli(site.config, "exports", "--verify", "--json")
    assert checked.returncode == 0, checked.stderr
    as_json = json.loads(checked.stdout)
    assert [j["verification"]["state"] for j in as_json] == ["verified", "verified"]
    assert all(j["verification"]["checked"] for j in as_json)
    assert set(as_json[0]) >= {"id", "actor", "cameras", "from", "to", "reason", "created"}
    assert len(site.audit("export.verify")) == 2

    # Footage changed after the hand-over: the check fails and says which file; a manifest
    # replaced altogether is no longer the one recorded.
    _flip(_segment(cli_out))
    failed = run_cli(site.config, "exports", "--verify")
    assert failed.returncode == 1, failed.stdout
    assert f"failed the check: {cli_export['id']}" in failed.stderr
    row = next(line for line in failed.stdout.splitlines() if "incident-7" in line)
    assert "failed" in row and "SHA-256 differs from the manifest" in row
    manifest = cli_out / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b"incident 7", b"incident 8"))
    shown = json.loads(run_cli(site.config, "exports", "--json").stdout)
    assert shown[1]["verification"]["state"] == "changed"
    assert shown[1]["verification"]["manifest_matches"] is False
    assert shown[1]["manifest_sha256"] == cli_export["manifest_sha256"]  # as handed over
    assert run_cli(site.config, "exports", "--limit", "0").returncode == 2
