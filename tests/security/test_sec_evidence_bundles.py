"""Issue 14, item 6: re-signing cannot fool export verification.

A forger holds the bundle and any key but the installation's. Whatever they change and
re-sign, `verify-export` must not say "ok" unless the person checking named the key they
trust; a bundle must hold footage; a hostile manifest must fail cleanly; and a receiver without
ccvault checks the bundle with `sha256sum` and OpenSSL, exactly as its README says.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import cli_json, run_cli
from tests.test_export import Site, make_site

FORGER = Ed25519PrivateKey.generate()
FORGER_RAW = FORGER.public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw
)
FORGER_FP = hashlib.sha256(FORGER_RAW).hexdigest()
FORGER_PEM = FORGER.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return make_site(tmp_path_factory.mktemp("sec-export"))


@pytest.fixture(scope="module")
def genuine(site: Site) -> Path:
    out = site.exports / "case-7"
    made = run_cli(
        site.config,
        "export",
        "--camera",
        "door",
        "--from",
        site.at(2.5),
        "--to",
        site.at(17.5),
        "--out",
        str(out),
        "--reason",
        "case 7",
    )
    assert made.returncode == 0, made.stderr
    return out


@pytest.fixture
def copy(genuine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(genuine, target, symlinks=True)
    return target


def verify(path: Path, *extra: str, config: Path | None = None) -> Any:
    """`verify-export` with no config to be found unless one is given."""
    return run_cli(config, "verify-export", str(path), *extra, env={"CCVAULT_CONFIG": ""})


def installation_fingerprint(site: Site) -> str:
    return cli_json(site.config, "signing-key")["fingerprint"]


def forge(bundle: Path, edit: Callable[[dict[str, Any], Path], None] | None = None) -> None:
    """What a thorough forger does: edit the manifest (and files), then make every signed part
    of the bundle theirs — the manifest's keys, manifest.sig, signer.pem, SHA256SUMS and its
    signature, the README's fingerprint — so only the choice of trusted key can tell."""
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    if edit is not None:
        edit(manifest, bundle)
    signature = manifest["signature"]
    signature["public_key"] = base64.b64encode(FORGER_RAW).decode()
    signature["public_key_pem"] = FORGER_PEM.decode()
    signature["public_key_sha256"] = FORGER_FP
    write_signed(bundle, json.dumps(manifest, indent=2).encode() + b"\n")


def write_signed(bundle: Path, body: bytes) -> None:
    (bundle / "manifest.json").write_bytes(body)
    (bundle / "manifest.sig").write_bytes(FORGER.sign(body))
    if (bundle / "signer.pem").exists():
        (bundle / "signer.pem").write_bytes(FORGER_PEM)
    readme = bundle / "README.txt"
    if readme.exists():
        readme.write_text(re.sub(r"\b[0-9a-f]{64}\b", FORGER_FP, readme.read_text()))
    if (bundle / "SHA256SUMS").exists():
        skip = {"SHA256SUMS", "SHA256SUMS.sig", "manifest.sig"}
        names = sorted(
            p.relative_to(bundle).as_posix()
            for p in bundle.rglob("*")
            if p.is_file() and p.relative_to(bundle).as_posix() not in skip
        )
        sums = "".join(f"{sha256(bundle / n)}  {n}\n" for n in names).encode()
        (bundle / "SHA256SUMS").write_bytes(sums)
        (bundle / "SHA256SUMS.sig").write_bytes(FORGER.sign(sums))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def segments_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in manifest["files"] if f["name"].startswith("segments/")]


def test_without_a_trusted_key_no_bundle_verifies_not_even_a_genuine_one(site, genuine, copy):
    forge(copy, lambda m, _: m.update(reason="something else"))
    for bundle in (copy, genuine):
        alone = verify(bundle)
        assert alone.returncode == 1, alone.stdout
        assert "no trusted key" in alone.stdout and "--fingerprint" in alone.stdout
        report = json.loads(verify(bundle, "--json").stdout)
        assert report["ok"] is False and report["signer"] == "no_trusted_key"
    assert FORGER_FP in verify(copy).stdout, "it says who signed it, so it can be looked up"
    # The installation's own config is a trusted key: its genuine bundle verifies.
    assert verify(genuine, config=site.config).returncode == 0


def test_a_valid_signature_by_an_unknown_key_fails_naming_its_fingerprint(site, genuine, copy):
    forge(copy, lambda m, _: m.update(reason="something else"))
    ours = installation_fingerprint(site)
    for trust in (
        ["--fingerprint", ours],
        ["--fingerprint", ours.upper()],
        ["--key", str(site.root / "signing-key.pem")],
    ):
        result = verify(copy, *trust)
        assert result.returncode == 1, (trust, result.stdout)
        assert f"signed by an unknown key, fingerprint {FORGER_FP}" in result.stdout
        assert verify(genuine, *trust).returncode == 0, trust
    mine = verify(copy, config=site.config)
    assert mine.returncode == 1 and "unknown key" in mine.stdout
    # Trusting the forger's key is the checker's own choice, and then it says so.
    assert verify(copy, "--fingerprint", FORGER_FP).returncode == 0
    for bad in ("abc", ours[:-1], "zz" * 32):
        wrong = verify(genuine, "--fingerprint", bad)
        assert wrong.returncode == 2 and "--fingerprint" in wrong.stderr, bad
    both = verify(genuine, "--fingerprint", ours, "--key", str(site.root / "signing-key.pem"))
    assert both.returncode == 2


def _empty(manifest: dict[str, Any], bundle: Path) -> None:
    for entry in segments_of(manifest):
        (bundle / entry["name"]).unlink()
    manifest["files"] = [f for f in manifest["files"] if f not in segments_of(manifest)]


def _nothing(manifest: dict[str, Any], bundle: Path) -> None:
    _empty(manifest, bundle)
    (bundle / "clip.mp4").unlink()
    manifest["files"] = []


@pytest.mark.parametrize("edit", [_empty, _nothing], ids=["no segments", "no files"])
def test_a_bundle_without_footage_fails_even_when_its_signer_is_trusted(copy, edit) -> None:
    forge(copy, edit)
    for trust in (["--fingerprint", FORGER_FP], ["--key", base64.b64encode(FORGER_RAW).decode()]):
        result = verify(copy, *trust)
        assert result.returncode == 1, result.stdout
        assert "no segment" in result.stdout, result.stdout


def test_a_segment_removed_and_the_manifest_resigned_fails(site, copy, tmp_path) -> None:
    def drop_second(manifest: dict[str, Any], bundle: Path) -> None:
        gone = segments_of(manifest)[1]
        (bundle / gone["name"]).unlink()
        manifest["files"].remove(gone)

    forge(copy, drop_second)
    for result in (verify(copy), verify(copy, config=site.config)):
        assert result.returncode == 1, result.stdout
    # Unsigned: a segment the manifest lists is gone.
    plain = tmp_path / "plain"
    shutil.copytree(site.exports / "case-7", plain)
    listed = segments_of(json.loads((plain / "manifest.json").read_bytes()))
    (plain / listed[0]["name"]).unlink()
    missing = verify(plain, config=site.config)
    assert missing.returncode == 1 and "missing from the bundle" in missing.stdout


def test_an_edited_sha256sums_is_caught_by_openssl_and_by_verify_export(site, copy) -> None:
    name = segments_of(json.loads((copy / "manifest.json").read_bytes()))[0]["name"]
    segment = copy / name
    data = bytearray(segment.read_bytes())
    data[300] ^= 0xFF
    segment.write_bytes(bytes(data))
    sums = copy / "SHA256SUMS"
    sums.write_text(
        "".join(
            f"{sha256(segment)}  {name}\n" if line.endswith(f"  {name}") else line + "\n"
            for line in sums.read_text().splitlines()
        )
    )
    assert run(copy, "sha256sum -c SHA256SUMS").returncode == 0, "the list alone was fooled"
    signature = run(
        copy,
        "openssl pkeyutl -verify -pubin -inkey signer.pem -rawin -in SHA256SUMS "
        "-sigfile SHA256SUMS.sig",
    )
    assert signature.returncode != 0, "but its signature does not match any more"
    result = verify(copy, config=site.config)
    assert result.returncode == 1 and "SHA256SUMS" in result.stdout, result.stdout


def run(cwd: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=cwd, capture_output=True, text=True
    )


def readme_commands(readme: str) -> list[str]:
    """The commands the README's English part tells a receiver to type, in order."""
    english = readme.split("[日本語]")[0]
    return [
        line.strip()
        for line in english.splitlines()
        if line.strip().startswith(("openssl ", "sha256sum "))
    ]


def test_a_receiver_checks_the_bundle_with_sha256sum_and_openssl_as_its_readme_says(
    site, genuine, copy
) -> None:
    readme = (genuine / "README.txt").read_text()
    ours = installation_fingerprint(site)
    assert "[English]" in readme and "[日本語]" in readme
    assert readme.count(ours) == 2, "the fingerprint to compare, in both languages"
    commands = readme_commands(readme)
    japanese = readme.split("[日本語]")[1]
    assert [c for c in commands if c not in japanese] == [], "the same commands in Japanese"
    assert [c.split()[:2] for c in commands] == [
        ["openssl", "pkey"],
        ["openssl", "pkeyutl"],
        ["sha256sum", "-c"],
    ], commands
    fingerprint, signature, sums = (run(genuine, c) for c in commands)
    assert fingerprint.returncode == 0 and fingerprint.stdout.split()[0] == ours
    assert signature.returncode == 0 and "Signature Verified Successfully" in signature.stdout
    assert sums.returncode == 0, sums.stdout + sums.stderr
    listed = {line.split("  ", 1)[1] for line in (genuine / "SHA256SUMS").read_text().splitlines()}
    on_disk = {p.relative_to(genuine).as_posix() for p in genuine.rglob("*") if p.is_file()}
    assert listed == on_disk - {"SHA256SUMS", "SHA256SUMS.sig", "manifest.sig"}
    assert "manifest.json" in listed and "README.txt" in listed and "signer.pem" in listed
    # OpenSSL checks the manifest's own signature the same way.
    manifest = run(
        genuine,
        "openssl pkeyutl -verify -pubin -inkey signer.pem -rawin -in manifest.json "
        "-sigfile manifest.sig",
    )
    assert manifest.returncode == 0, manifest.stdout + manifest.stderr
    # A changed file fails the receiver's check, and so does a forger's key.
    segment = next((copy / "segments").iterdir())
    segment.write_bytes(segment.read_bytes()[:-1])
    assert run(copy, commands[2]).returncode != 0
    forge(copy)
    assert run(copy, commands[0]).stdout.split()[0] == FORGER_FP != ours


def _outside(manifest: dict[str, Any], bundle: Path) -> None:
    (bundle.parent / "outside.mp4").write_bytes(b"outside")
    manifest["files"].append(
        {"name": "../outside.mp4", "bytes": 7, "sha256": sha256_of(b"outside")}
    )


def _absolute(manifest: dict[str, Any], bundle: Path) -> None:
    target = bundle / "clip.mp4"
    manifest["files"].append(
        {"name": str(target), "bytes": target.stat().st_size, "sha256": sha256(target)}
    )


def _twice(manifest: dict[str, Any], bundle: Path) -> None:
    manifest["files"].append(dict(segments_of(manifest)[0]))


def _twice_differing(manifest: dict[str, Any], bundle: Path) -> None:
    first = segments_of(manifest)[0]
    manifest["files"].insert(0, {**first, "sha256": "0" * 64, "bytes": 1})


def _size(value: Any) -> Callable[[dict[str, Any], Path], None]:
    def edit(manifest: dict[str, Any], bundle: Path) -> None:
        segments_of(manifest)[0]["bytes"] = value

    return edit


def _not_an_object(manifest: dict[str, Any], bundle: Path) -> None:
    manifest["files"].append("segments/evil.mp4")


def _symlink(manifest: dict[str, Any], bundle: Path) -> None:
    entry = segments_of(manifest)[0]
    copy = bundle / entry["name"]
    original = bundle.parent / "original.mp4"
    shutil.copyfile(copy, original)
    copy.unlink()
    copy.symlink_to(original)


def _fifo(manifest: dict[str, Any], bundle: Path) -> None:
    entry = segments_of(manifest)[0]
    (bundle / entry["name"]).unlink()
    os.mkfifo(bundle / entry["name"])


def _directory(manifest: dict[str, Any], bundle: Path) -> None:
    entry = segments_of(manifest)[0]
    (bundle / entry["name"]).unlink()
    (bundle / entry["name"]).mkdir()


def _hidden_name(manifest: dict[str, Any], bundle: Path) -> None:
    (bundle / "segments" / "..hidden").write_bytes(b"x")
    manifest["files"].append({"name": "segments/..hidden", "bytes": 1, "sha256": sha256_of(b"x")})


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


HOSTILE: list[tuple[str, Callable[[dict[str, Any], Path], None], str]] = [
    ("outside the bundle", _outside, "outside the bundle"),
    ("absolute path", _absolute, "outside the bundle"),
    ("listed twice", _twice, "listed twice"),
    ("listed twice, differing", _twice_differing, "listed twice"),
    ("size 10**30", _size(10**30), "bytes"),
    ("size -1", _size(-1), "bytes"),
    ("size true", _size(True), "bytes"),
    ("size as text", _size("4096"), "bytes"),
    ("entry not an object", _not_an_object, "manifest.json"),
    ("symlink", _symlink, "not a regular file"),
    ("fifo", _fifo, "not a regular file"),
    ("a directory listed", _directory, "not a regular file"),
    ("hidden name", _hidden_name, "outside the bundle"),
]


@pytest.mark.parametrize(
    "edit, problem", [(e, p) for _, e, p in HOSTILE], ids=[i for i, _, _ in HOSTILE]
)
def test_a_hostile_manifest_fails_cleanly_even_from_a_trusted_signer(copy, edit, problem) -> None:
    """A bundle is input from anyone: its own signer may be the adversary. Whatever the
    manifest says, the check ends, exits 1 naming the problem, and never reads outside the
    bundle (the trusted key is the forger's here, so only the hostile part can fail)."""
    forge(copy, edit)
    result = run_cli(
        None,
        "verify-export",
        str(copy),
        "--key",
        base64.b64encode(FORGER_RAW).decode(),
        env={"CCVAULT_CONFIG": ""},
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert problem in result.stdout, result.stdout


@pytest.mark.parametrize("body", ["deep", "huge", "not json", "a key twice"])
def test_an_unreadable_manifest_fails_cleanly(copy, body) -> None:
    if body == "a key twice":  # read one way here, maybe the other way by another reader
        forge(copy)
        text = (copy / "manifest.json").read_text()
        write_signed(copy, text.replace('"files": [', '"files": [], "files": [', 1).encode())
    elif body == "deep":
        write_signed(copy, b"[" * 200_000 + b"]" * 200_000)
    elif body == "huge":
        with open(copy / "manifest.json", "r+b") as f:
            f.truncate(300 * 1024 * 1024)  # sparse: no disk used, but no reader may load it
    else:
        write_signed(copy, b'{"format": "ccvault-evidence/2", "files": ')
    result = verify(copy, "--fingerprint", FORGER_FP)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "manifest.json" in result.stdout, result.stdout
    if body == "a key twice":
        assert "given twice" in result.stdout, result.stdout
