"""What the audit-log attack tests share: an installation with its signing key, a few real
audited actions through the CLI, and the tools an attacker would use on the files (cut, forge,
re-chain). Not a test module; the tests are `test_sec_audit_*.py` beside it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ccvault.catalog.audit import GENESIS, audit_log, record_hash
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.evidence.signing import installation_key
from tests.conftest import cli_json, run_cli, write_config

NOW_MS = 1_800_000_000_000


def installation(root: Path, audit: str = "") -> Path:
    """A config (with `[audit]` keys if given) and the installation's key, made as the daemon's
    first start makes it (audited: record 1)."""
    config = write_config(root, [{"name": "door", "url": "demo://", "enabled": False}])
    if audit:
        config.write_text(config.read_text() + f"\n[audit]\n{audit}\n")
    loaded = load(config).config
    writer = CatalogWriter(loaded.catalog_target, audit_log(loaded))
    installation_key(loaded.signing_key_path, writer, "daemon", NOW_MS)
    writer.close()
    return config


def add_holds(config: Path, count: int, reason: str = "incident") -> list[int]:
    """Holds added by an operator through the CLI: one audit record each."""
    ids = []
    for _ in range(count):
        done = run_cli(config, "hold", "add", "--from", "-2d", "--to", "-1d", "--reason", reason)
        assert done.returncode == 0, done.stderr
        ids.append(int(done.stdout))
    return ids


def backup(config: Path, into: Path) -> dict[str, Any]:
    return cli_json(config, "backup", str(into))


def verify(config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    done = run_cli(config, "audit", "verify", "--json", *extra)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def open_problems(report: dict[str, Any]) -> list[tuple[str, int]]:
    """(kind, seq) of each problem nobody has acknowledged."""
    return [(p["kind"], p["seq"]) for p in report["problems"] if not p["acknowledged"]]


def detail(report: dict[str, Any], kind: str) -> str:
    return next(p["detail"] for p in report["problems"] if p["kind"] == kind)


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path)]


def write_records(path: Path, chain: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(encode(r) for r in chain))


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def rechain(chain: list[dict[str, Any]], prev: str = GENESIS) -> list[dict[str, Any]]:
    """What a forger with the file (and this source) does: every link and hash made valid."""
    out = []
    for seq, record in enumerate(chain, chain[0]["seq"] if chain else 1):
        forged = {**record, "seq": seq, "prev": prev}
        forged.pop("hash", None)
        forged["hash"] = prev = record_hash(forged)
        out.append(forged)
    return out


def forged_record(after: dict[str, Any], action: str, details: dict[str, Any]) -> dict[str, Any]:
    """A well-formed record chained onto `after`, as if ccvault had written it."""
    record = {
        "seq": after["seq"] + 1,
        "time": after["time"],
        "actor": "cli:mallory",
        "action": action,
        "object": "hold:99",
        "details": details,
        "prev": after["hash"],
    }
    record["hash"] = record_hash(record)
    return record


def restore_catalog(config: Path, copy: Path) -> None:
    """Put a backup's catalog back in place of the live one (as an admin restoring it would)."""
    catalog = load(config).config.storage.catalog
    for leftover in (catalog.with_name(catalog.name + s) for s in ("-wal", "-shm")):
        leftover.unlink(missing_ok=True)
    catalog.write_bytes(copy.read_bytes())


def hold_rows(config: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(load(config).config.storage.catalog) as conn:
        return conn.execute("SELECT id, reason FROM holds ORDER BY id").fetchall()
