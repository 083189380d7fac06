"""The audit log's chain, from the daemon's and CLI's side; backups; the integrity scrub."""

from __future__ import annotations

import itertools
import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccvault.catalog import db
from ccvault.catalog.audit import AuditCheck, AuditLog, audit_log
from ccvault.catalog.audit_verify import Verifier
from ccvault.catalog.backup import backup
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.errors import Refused
from ccvault.host.clock import SystemClock
from ccvault.host.journal import JournalSink
from ccvault.host.keys import KeyFile, load_or_create
from ccvault.storage.integrity import Scrubber
from ccvault.storage.volumes import open_volumes
from tests.conftest import REPO, cli_json, run_cli, wait_for, write_config
from tests.retention_seed import seed

APPEND = """
import sys, time
from pathlib import Path
from ccvault.catalog.audit import AuditLog, audit_log
from ccvault.catalog.writer import CatalogWriter
log, me, other = sys.argv[2], sys.argv[3], sys.argv[4]
w = CatalogWriter(Path(sys.argv[1]), AuditLog(Path(log)))

def wait_for(name):
    while not Path(name).exists():
        time.sleep(0.001)

Path(log + "." + me).touch()
wait_for(log + ".go")  # both start appending together
for i in range(20):
    # Never more than one append ahead of the other process, however the machine schedules
    # the two: both append at once, and they take turns.
    wait_for(f"{log}.{other}.{i}")
    with w.transaction():
        w.audit(me, "test.append", f"n:{i}", {"i": i}, 1_800_000_000_000 + i)
    Path(f"{log}.{me}.{i + 1}").touch()
"""


def test_two_processes_append_one_chain_and_tampering_is_found(tmp_path: Path) -> None:
    config = write_config(tmp_path, [])
    catalog, log = tmp_path / "catalog.sqlite", tmp_path / "audit.jsonl"
    CatalogWriter(catalog).close()
    names = ("daemon", "cli:alice")
    for name in names:
        Path(f"{log}.{name}.0").touch()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND, str(catalog), str(log), name, other], cwd=REPO
        )
        for name, other in zip(names, reversed(names), strict=True)
    ]
    wait_for(
        lambda: all(Path(f"{log}.{n}").exists() for n in ("daemon", "cli:alice")),
        30,
        interval=0.01,
        what="both appenders ready",
    )
    Path(f"{log}.go").touch()
    assert [p.wait(60) for p in procs] == [0, 0]
    records = cli_json(config, "audit", "list")
    assert [r["seq"] for r in records] == list(range(1, 41))
    actors = [r["actor"] for r in records]
    assert sum(a != b for a, b in itertools.pairwise(actors)) > 2  # they did take turns
    ok = run_cli(config, "audit", "verify")
    assert ok.returncode == 0 and "40 records, chain intact" in ok.stdout

    lines = log.read_text().splitlines(keepends=True)
    edited = json.loads(lines[21])
    edited["details"]["i"] = 999
    log.write_text("".join([*lines[:21], json.dumps(edited) + "\n", *lines[22:]]))
    broken = run_cli(config, "audit", "verify", "--json")
    assert broken.returncode == 1
    [problem] = json.loads(broken.stdout)["problems"]
    assert (problem["kind"], problem["line"], problem["file"]) == ("broken", 22, "audit.jsonl")
    log.write_text("".join(lines[:10] + lines[11:]))  # a line removed
    removed = run_cli(config, "audit", "verify")
    assert removed.returncode == 1 and "line 11" in removed.stdout


def test_a_torn_last_line_is_repaired_in_the_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "logs" / "audit.jsonl")
    assert log.verify() == AuditCheck(True, 0, None, "")  # no file yet: nothing to break
    log.append(actor="t", action="a", obj="o", details={"big": "x" * 20_000}, now_ms=1)
    assert log.path.stat().st_mode & 0o777 == 0o600
    with open(log.path, "ab") as f:
        f.write(b'{"seq":2,"time":"2026')  # a crash mid-append
    check = log.verify()  # what a reader sees while an append is under way
    assert check.ok and check.records == 1 and "torn" in check.problem
    log.append(actor="t", action="b", obj="o", details={}, now_ms=2)
    assert [r["action"] for r in log.records()] == ["a", "audit.repaired", "b"]
    assert next(r for r in log.records() if r["action"] == "audit.repaired")["details"] == {
        "dropped_bytes": 21
    }
    assert log.verify() == AuditCheck(True, 3, None, "")


def test_backup_copies_catalog_and_audit_log_consistently(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    assert (
        run_cli(config, "hold", "add", "--from", "-1d", "--to", "now", "--reason", "x").returncode
        == 0
    )
    out = cli_json(config, "backup", str(tmp_path / "bk"))
    with sqlite3.connect(out["catalog"]) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT reason FROM holds").fetchall() == [("x",)]
    assert AuditLog(Path(out["audit"])).verify().ok
    assert out["audit_records"] == 1  # the hold; the backup's own record comes after
    assert [r["action"] for r in AuditLog(tmp_path / "audit.jsonl").records()] == [
        "hold.add",
        "backup",
    ]
    # The next backup's files are named by the second: wait for the next one.
    first = Path(out["catalog"]).name
    wait_for(
        lambda: f"catalog-{stamp(int(time.time()))}.sqlite" > first,
        5,
        interval=0.05,
        what="a new second",
    )
    assert run_cli(config, "backup", str(tmp_path / "bk")).returncode == 0
    assert len(list((tmp_path / "bk").glob("catalog-*.sqlite"))) == 2


def test_audit_list_filters_by_action_and_time(tmp_path: Path, catalog_target: db.Target) -> None:
    config = write_config(tmp_path, [], catalog=catalog_target)
    loaded = load(config).config
    writer = CatalogWriter(loaded.catalog_target, audit_log(loaded))
    now = int(time.time() * 1000)
    for action, obj, at in (
        ("hold.add", "hold:1", now - 3 * 86_400_000),
        ("purge", "segments", now - 60_000),
        ("hold.add", "hold:2", now),
    ):
        with writer.transaction():
            writer.audit("cli:alice", action, obj, {"n": 1}, at)
    writer.close()
    found = cli_json(config, "audit", "list", "--action", "hold.add", "--since", "-1d")
    assert found == [list(audit_log(loaded).records())[2]]  # as stored
    people = run_cli(config, "audit", "list", "--since", "-1d")
    assert people.returncode == 0
    assert [line.split()[-3:] for line in people.stdout.splitlines()[1:]] == [
        ["purge", "segments", '{"n":1}'],
        ["hold.add", "hold:2", '{"n":1}'],
    ]


def stamp(seconds: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))


def test_backup_holds_the_rows_and_never_replaces_a_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, [])
    writer = CatalogWriter(tmp_path / "catalog.sqlite", AuditLog(tmp_path / "audit.jsonl"))
    writer.cameras.ensure(["a"])
    for i in range(3):
        with writer.transaction():
            writer.audit("daemon", "daemon.start", "daemon", {"i": i}, 1_000 + i)
    bk, at = tmp_path / "bk", 1_800_000_000_000
    out = backup(load(config).config, writer, bk, at, "cli:alice")
    assert out["catalog"] == str(bk / f"catalog-{stamp(at // 1000)}.sqlite")
    assert out["audit_records"] == 3 and out["created"] == "2027-01-15T08:00:00.000Z"
    with sqlite3.connect(out["catalog"]) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT name FROM cameras").fetchall() == [("a",)]
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    assert AuditLog(Path(out["audit"])).verify() == AuditCheck(True, 3, None, "")
    last = list(writer.audit_log.records())[-1]
    assert (last["seq"], last["action"], last["details"]["catalog"]) == (
        4,
        "backup",
        out["catalog"],
    )

    (bk / f"audit-{stamp(at // 1000 + 1)}.jsonl").write_text("not ours\n")
    with pytest.raises(Refused):
        backup(load(config).config, writer, bk, at + 1000, "cli:alice")
    assert not (bk / f"catalog-{stamp(at // 1000 + 1)}.sqlite").exists()
    writer.close()

    now = int(time.time())
    for second in range(now - 2, now + 30):
        (bk / f"catalog-{stamp(second)}.sqlite").touch()
    clash = run_cli(config, "backup", str(bk))
    assert clash.returncode == 4
    assert clash.stderr.startswith(f"ccvault: error: {bk}/catalog-")
    assert "exists already" in clash.stderr
    assert [r["seq"] for r in AuditLog(tmp_path / "audit.jsonl").records()] == [1, 2, 3, 4]


def test_scrub_flags_a_corrupt_segment_and_keeps_it(
    tmp_path: Path, catalog_target: db.Target
) -> None:
    config = write_config(
        tmp_path, [{"name": "door", "url": "demo://", "enabled": False}], catalog=catalog_target
    )
    now = int(time.time() * 1000)
    good, bad = seed(
        config,
        [
            {"camera": "door", "start_ms": now - 60_000},
            {"camera": "door", "start_ms": now - 30_000},
        ],
        tmp_path / "c",
    )
    data = bytearray(bad.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.path.write_bytes(bytes(data))
    loaded = load(config).config
    writer = CatalogWriter(loaded.catalog_target)
    volumes = open_volumes(loaded, writer, now)
    scrubber = Scrubber(writer, lambda: volumes, SystemClock(), mb_per_s=50)
    assert scrubber.scrub_next() and scrubber.scrub_next()
    with writer.reader() as conn:
        verdicts = dict(conn.execute("SELECT id, integrity FROM segments").fetchall())
    assert verdicts == {good.id: "ok", bad.id: "corrupt"}
    assert bad.path.exists()  # evidence is flagged, never silently replaced
    writer.close()


def test_a_record_whose_transaction_rolled_back_is_marked_and_never_replayed(
    tmp_path: Path, catalog_target: db.Target
) -> None:
    """The crash window: a record is fsynced, then its transaction fails to commit."""
    config = write_config(
        tmp_path, [{"name": "door", "url": "demo://", "enabled": False}], catalog=catalog_target
    )
    assert run_cli(config, "hold", "add", "--from", "-2d", "--to", "-1d", "--reason", "x").stdout
    loaded = load(config).config
    writer = CatalogWriter(loaded.catalog_target, audit_log(loaded))
    with pytest.raises(RuntimeError), writer.transaction():
        writer.audit("cli:bob", "hold.release", "hold:1", {"id": 1, "reason": "oops"}, 1)
        raise RuntimeError("the commit never happens")
    writer.close()
    report = cli_json(config, "audit", "verify")
    assert report["ok"] and any("crash window" in n for n in report["notes"])
    assert run_cli(config, "hold", "rebuild").returncode == 0
    assert [h["state"] for h in cli_json(config, "hold", "list")] == ["active"]
    actions = [r["action"] for r in cli_json(config, "audit", "list")]
    assert actions[:4] == ["hold.add", "hold.release", "audit.uncommitted", "hold.rebuild"]
    report = cli_json(config, "audit", "verify")
    assert report["ok"] and any("seq 2 (hold.release)" in n for n in report["notes"])


def test_the_minute_check_reads_only_what_is_new_across_rotation(tmp_path: Path) -> None:
    load_or_create(tmp_path / "key.pem")
    log = AuditLog(tmp_path / "audit.jsonl", key=KeyFile(tmp_path / "key.pem"), max_bytes=1024)
    writer = CatalogWriter(tmp_path / "catalog.sqlite", log)
    verifier = Verifier(log, writer.audit_chain.head)
    for round_ in range(4):
        for i in range(3):
            with writer.transaction():
                writer.audit("t", "x", f"o{i}", {"pad": "x" * 300}, 1_000 + i)
        report = verifier.check()
        assert report.ok and report.records == 3 * (round_ + 1), report.as_json()
    sealed = [f for f in log.files() if f.first_seq is not None]
    assert len(sealed) >= 3 and verifier.rereads == 0
    assert report.checkpoints.valid >= len(sealed)  # each seal signed

    site = tmp_path / "site"  # where the footage would be: the backup goes beside, not in it
    site.mkdir()
    config = load(write_config(site, [])).config
    out = backup(config, writer, tmp_path / "bk", 1_900_000_000_000, "t")  # one file, alone
    copy = AuditLog(Path(out["audit"])).verify()
    assert copy.ok and copy.records == out["audit_records"] == 12

    first = sealed[0].path
    first.write_bytes(first.read_bytes().replace(b'"o0"', b'"oX"', 1))
    report = verifier.check()  # a sealed file changed: everything is read again
    assert verifier.rereads == 1 and [(p.kind, p.line) for p in report.open] == [("broken", 1)]
    writer.close()


def test_each_record_also_goes_to_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "journal.socket"  # stands in for /run/systemd/journal/socket
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(journal))
    receiver.settimeout(10)
    log = AuditLog(tmp_path / "audit.jsonl", journal=JournalSink(journal))
    big = log.append(actor="t", action="purge", obj="s", details={"x": "y" * 100_000}, now_ms=1)
    small = log.append(actor="t", action="hold.add", obj="hold:1", details={}, now_ms=2)
    entries = [
        dict(line.split("=", 1) for line in receiver.recv(1 << 20).decode().splitlines())
        for _ in range(2)
    ]
    assert entries[0]["CCVAULT_AUDIT_HASH"] == big.record["hash"]
    assert entries[0]["CCVAULT_AUDIT_TRUNCATED"] == "1"  # the chain fields only
    assert json.loads(entries[1]["MESSAGE"]) == small.record
    assert entries[1]["SYSLOG_IDENTIFIER"] == "ccvault-audit"
    receiver.close()
    journal.unlink()
    log.append(actor="t", action="hold.add", obj="hold:2", details={}, now_ms=3)  # goes on
    assert log.journal is not None and log.journal.sent == 2
    assert log.verify().ok
