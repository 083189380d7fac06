"""The audit log's chain, from the daemon's and CLI's side; backups; the integrity scrub."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ccvault.audit import AuditLog
from ccvault.catalog.writer import CatalogWriter
from ccvault.clock import SystemClock
from ccvault.config import load
from ccvault.integrity import Scrubber
from ccvault.volumes import open_volumes
from tests.conftest import REPO, cli_json, run_cli, write_config
from tests.retention_seed import seed

APPEND = """
import sys
from pathlib import Path
from ccvault.audit import AuditLog
from ccvault.catalog.writer import CatalogWriter
w = CatalogWriter(Path(sys.argv[1]), AuditLog(Path(sys.argv[2])))
for i in range(50):
    with w.transaction():
        w.audit(sys.argv[3], "test.append", f"n:{i}", {"i": i}, 1_800_000_000_000 + i)
"""


def test_two_processes_append_one_chain_and_tampering_is_found(tmp_path: Path) -> None:
    config = write_config(tmp_path, [])
    catalog, log = tmp_path / "catalog.sqlite", tmp_path / "audit.jsonl"
    CatalogWriter(catalog).close()
    procs = [subprocess.Popen([sys.executable, "-c", APPEND, str(catalog), str(log), name],
                              cwd=REPO) for name in ("daemon", "cli:alice")]
    assert [p.wait(60) for p in procs] == [0, 0]
    records = cli_json(config, "audit", "list")
    assert [r["seq"] for r in records] == list(range(1, 101))
    assert {r["actor"] for r in records} == {"daemon", "cli:alice"}
    ok = run_cli(config, "audit", "verify")
    assert ok.returncode == 0 and "100 records, chain intact" in ok.stdout
    assert len(cli_json(config, "audit", "list", "--action", "nothing")) == 0

    lines = log.read_text().splitlines(keepends=True)
    edited = json.loads(lines[41])
    edited["details"]["i"] = 999
    log.write_text("".join(lines[:41] + [json.dumps(edited) + "\n"] + lines[42:]))
    broken = run_cli(config, "audit", "verify", "--json")
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["bad_line"] == 42
    log.write_text("".join(lines[:10] + lines[11:]))  # a line removed
    removed = run_cli(config, "audit", "verify")
    assert removed.returncode == 1 and "line 11" in removed.stdout


def test_a_torn_last_line_is_repaired_in_the_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(actor="t", action="a", obj="o", details={}, now_ms=1)
    with open(log.path, "ab") as f:
        f.write(b'{"seq":2,"time":"2026')  # a crash mid-append
    log.append(actor="t", action="b", obj="o", details={}, now_ms=2)
    assert [r["action"] for r in log.records()] == ["a", "audit.repaired", "b"]
    assert log.verify().ok


def test_backup_copies_catalog_and_audit_log_consistently(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    assert run_cli(config, "hold", "add", "--from", "-1d", "--to", "now", "--reason", "x"
                   ).returncode == 0
    out = cli_json(config, "backup", str(tmp_path / "bk"))
    with sqlite3.connect(out["catalog"]) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT reason FROM holds").fetchall() == [("x",)]
    assert AuditLog(Path(out["audit"])).verify().ok
    assert out["audit_records"] == 1  # the hold; the backup's own record comes after
    assert [r["action"] for r in AuditLog(tmp_path / "audit.jsonl").records()] == [
        "hold.add", "backup"]
    time.sleep(1.1)
    assert run_cli(config, "backup", str(tmp_path / "bk")).returncode == 0
    assert len(list((tmp_path / "bk").glob("catalog-*.sqlite"))) == 2


def test_scrub_flags_a_corrupt_segment_and_keeps_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    now = int(time.time() * 1000)
    good, bad = seed(config, [{"camera": "door", "start_ms": now - 60_000},
                              {"camera": "door", "start_ms": now - 30_000}], tmp_path / "c")
    data = bytearray(bad.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.path.write_bytes(bytes(data))
    loaded = load(config).config
    writer = CatalogWriter(loaded.storage.catalog)
    volumes = open_volumes(loaded, writer, now)
    scrubber = Scrubber(writer, lambda: volumes, SystemClock(), mb_per_s=50)
    assert scrubber.scrub_next() and scrubber.scrub_next()
    with writer.reader() as conn:
        verdicts = dict(conn.execute("SELECT id, integrity FROM segments").fetchall())
    assert verdicts == {good.id: "ok", bad.id: "corrupt"}
    assert bad.path.exists()  # evidence is flagged, never silently replaced
    writer.close()
