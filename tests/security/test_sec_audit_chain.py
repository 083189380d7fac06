"""Issue 14, item 2: the audit log cannot be silently cut, replaced or extended.

Each test is an attack on the files an attacker can write (the log, its sealed files, its
checkpoints), or a mistake (an old catalog restored), and shows `ccvault audit verify` exit 1
with the right diagnosis — also after ccvault writes again, so the next record cannot paper
over it. The catalog's head (seq, hash), committed with each record, and the signed
checkpoints are what the attacker cannot reach.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.security.audit_tamper import (
    add_holds,
    backup,
    detail,
    encode,
    forged_record,
    installation,
    lines,
    open_problems,
    rechain,
    records,
    restore_catalog,
    verify,
    write_records,
)


def test_a_cut_tail_is_found_after_the_last_record_left(tmp_path: Path) -> None:
    config = installation(tmp_path)
    add_holds(config, 4)  # records 2..5
    log = tmp_path / "audit.jsonl"
    kept = lines(log)
    log.write_bytes(b"".join(kept[:3]) + kept[3][:40])  # 4 and 5 gone, a torn rest left
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("tail_cut", 4)]
    assert "tail cut after seq 3" in detail(report, "tail_cut")
    assert report["head"]["seq"] == 5

    add_holds(config, 1)  # the next write goes on, and the cut stays in the chain
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("tail_cut", 4)]


def test_an_emptied_log_is_a_tail_cut_after_seq_0(tmp_path: Path) -> None:
    config = installation(tmp_path)
    add_holds(config, 2)
    (tmp_path / "audit.jsonl").write_bytes(b"")
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("tail_cut", 1)]
    assert "tail cut after seq 0" in detail(report, "tail_cut")


def test_a_deleted_log_is_found_missing_and_stays_found(tmp_path: Path) -> None:
    config = installation(tmp_path)
    add_holds(config, 2)
    (tmp_path / "audit.jsonl").unlink()
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("file_missing", 1)]
    assert "missing" in detail(report, "file_missing")
    add_holds(config, 1)  # a fresh file is started, and says what happened before it
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("file_missing", 1)]
    assert records(tmp_path / "audit.jsonl")[0]["action"] == "audit.discontinuity"


def test_a_log_replaced_by_a_rehashed_forgery_is_found(tmp_path: Path) -> None:
    config = installation(tmp_path)
    add_holds(config, 1)  # 2
    backup(config, tmp_path / "bk")  # 3, signed
    add_holds(config, 2)  # 4, 5
    log, sidecar = tmp_path / "audit.jsonl", tmp_path / "audit.jsonl.checkpoints"
    genuine = records(log)
    assert verify(config)[0] == 0
    # A valid chain of different content: the same length, longer, shorter.
    for forged in (
        rechain([{**r, "actor": "cli:mallory"} for r in genuine]),
        rechain([{**r, "actor": "cli:mallory"} for r in genuine + genuine[-2:]]),
        rechain([{**r, "actor": "cli:mallory"} for r in genuine[:4]]),
    ):
        write_records(log, forged)
        code, report = verify(config)
        assert code == 1 and ("replaced", 3) in open_problems(report), report
        assert "signed checkpoint" in detail(report, "replaced")
    # The checkpoints file forged too (another key) or gone: the catalog still knows.
    write_records(log, rechain([{**r, "actor": "cli:mallory"} for r in genuine]))
    signed = [json.loads(line) for line in sidecar.read_text().splitlines()]
    sidecar.write_text("".join(json.dumps({**c, "key": "A" * 43 + "="}) + "\n" for c in signed))
    code, report = verify(config)
    assert code == 1 and {"replaced", "checkpoint_invalid"} <= {k for k, _ in open_problems(report)}
    sidecar.unlink()
    code, report = verify(config)
    assert code == 1 and ("replaced", 3) in open_problems(report)


def test_an_edited_line_is_found_whether_or_not_the_rest_is_rechained(tmp_path: Path) -> None:
    config = installation(tmp_path)
    add_holds(config, 1)  # 2
    backup(config, tmp_path / "bk")  # 3, signed
    add_holds(config, 2)  # 4, 5
    log = tmp_path / "audit.jsonl"
    genuine = records(log)

    def edited(index: int) -> dict:
        r = genuine[index]
        return {**r, "details": {**r["details"], "reason": "nothing to see"}}

    # After the last signed checkpoint: only the catalog's head can tell.
    write_records(log, genuine[:3] + rechain([edited(3), genuine[4]], prev=genuine[2]["hash"]))
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("replaced", 5)]
    assert "catalog" in detail(report, "replaced")
    # Before it: the signature tells.
    write_records(log, genuine[:1] + rechain([edited(1), *genuine[2:]], prev=genuine[0]["hash"]))
    code, report = verify(config)
    assert code == 1 and ("replaced", 3) in open_problems(report)
    # Not rechained: the line itself.
    log.write_bytes(b"".join([*map(encode, genuine[:3]), encode(edited(3)), encode(genuine[4])]))
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("broken", 4)]
    assert "line 4" in detail(report, "broken") and "hash mismatch" in detail(report, "broken")

    write_records(log, genuine[:3] + rechain([edited(3), genuine[4]], prev=genuine[2]["hash"]))
    add_holds(config, 1)  # the next write does not adopt the rewritten tail
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("replaced", 5)]


def test_records_forged_after_the_catalogs_head_are_found(tmp_path: Path) -> None:
    config = installation(tmp_path)
    add_holds(config, 2)  # 2, 3
    log = tmp_path / "audit.jsonl"
    last = records(log)[-1]
    release = forged_record(last, "hold.release", {"id": 1, "reason": "mallory"})
    second = forged_record(release, "hold.release", {"id": 2, "reason": "mallory"})
    with log.open("ab") as f:
        f.write(encode(release) + encode(second))
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("log_ahead", 4)]
    assert "not in the catalog" in detail(report, "log_ahead")

    # One record past the head cannot be told from a crash between append and commit: it is
    # reported as such, and once ccvault writes again it is marked as never committed.
    log.write_bytes(b"".join(lines(log)[:-1]))
    code, report = verify(config)
    assert code == 0 and any("crash window" in n for n in report["notes"]), report
    add_holds(config, 1)
    code, report = verify(config)
    assert code == 0 and any("seq 4" in n and "not commit" in n for n in report["notes"])


def test_garbage_after_the_tail_neither_stops_ccvault_nor_hides(tmp_path: Path) -> None:
    """Whoever can write the file must not be able to stop every audited action (purges,
    holds, views) by making its end unreadable: the chain goes on, the lines stay named."""
    config = installation(tmp_path)
    add_holds(config, 1)  # 2
    log = tmp_path / "audit.jsonl"
    with log.open("ab") as f:
        f.write(b"not a record\n" * 30 + b'{"seq": 3}\n')
    add_holds(config, 1)  # still works, chained on the last record
    last = json.loads(lines(log)[-1])
    assert (last["seq"], last["action"]) == (3, "hold.add")
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("broken", 3)]
    assert "line 3 of audit.jsonl" in detail(report, "broken")
    # A well-chained record whose seq no catalog can hold: passed over all the same.
    huge = rechain([{**forged_record(last, "hold.release", {}), "seq": 10**30}], last["hash"])
    with log.open("ab") as f:
        f.write(encode(huge[0]))
    add_holds(config, 1)
    assert json.loads(lines(log)[-1])["seq"] == 4
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("broken", 3), ("broken", 4)]


def test_a_forged_acknowledgment_counts_for_nothing(tmp_path: Path) -> None:
    """Only `audit acknowledge`, with the key, can accept a break: an acknowledgment line
    written into the file stays void, even once later genuine records are signed after it."""
    config = installation(tmp_path)
    add_holds(config, 2)  # 2, 3
    log = tmp_path / "audit.jsonl"
    genuine = records(log)
    edited = {**genuine[1], "details": {**genuine[1]["details"], "reason": "nothing"}}
    ack = forged_record(
        genuine[2],
        "audit.acknowledged",
        {"reason": "mallory", "problems": [{"kind": "broken", "seq": 2}]},
    )
    write_records(log, [genuine[0], edited, genuine[2], ack])
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("broken", 2)]
    add_holds(config, 1)
    backup(config, tmp_path / "bk")  # a genuine checkpoint after the forged line
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("broken", 2)]


def test_an_old_catalog_restored_is_diagnosed_and_stays_until_acknowledged(
    tmp_path: Path,
) -> None:
    config = installation(tmp_path)
    old = backup(config, tmp_path / "bk")  # 2 (the copy's head is 1), signed
    add_holds(config, 2)  # 3, 4
    backup(config, tmp_path / "bk2")  # 5, signed
    restore_catalog(config, Path(old["catalog"]))
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("catalog_behind", 2)]
    assert "older" in detail(report, "catalog_behind")
    assert report["head"]["seq"] == 1

    assert run_cli(config, "hold", "rebuild").returncode == 0  # the signed holds come back
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("catalog_behind", 2)]

    refused = run_cli(config, "audit", "acknowledge", "--reason", " ")
    assert refused.returncode == 2 and "--reason" in refused.stderr
    ack = run_cli(config, "audit", "acknowledge", "--reason", "restored from bk", "--json")
    assert ack.returncode == 0, ack.stderr
    assert [(p["kind"], p["seq"]) for p in json.loads(ack.stdout)["acknowledged"]] == [
        ("catalog_behind", 2)
    ]
    code, report = verify(config)
    assert code == 0 and open_problems(report) == []
    [kept] = report["problems"]  # still there, forever, with who accepted it and why
    assert kept["kind"] == "catalog_behind" and kept["acknowledged"]["reason"] == "restored from bk"
    assert run_cli(config, "audit", "acknowledge", "--reason", "again").returncode == 4

    add_holds(config, 1)
    log = tmp_path / "audit.jsonl"
    log.write_bytes(b"".join(lines(log)[:-1]))  # a new cut is new: the old ack does not cover it
    code, report = verify(config)
    assert code == 1 and [k for k, _ in open_problems(report)] == ["tail_cut"]


def test_cuts_are_found_across_rotated_files(tmp_path: Path) -> None:
    config = installation(tmp_path, 'max_bytes = "1 KiB"')
    add_holds(config, 6)  # ~500 bytes a record: sealed every two or three records
    sealed = sorted(tmp_path.glob("audit.jsonl.[0-9]*"))
    assert len(sealed) >= 2
    code, report = verify(config)
    assert code == 0 and report["records"] == 7 and len(report["files"]) == len(sealed) + 1
    assert [f["name"] for f in report["files"]] == [p.name for p in sealed] + ["audit.jsonl"]
    first_of_second = records(sealed[1])[0]["seq"]

    kept = sealed[1].read_bytes()
    sealed[1].unlink()  # a whole sealed file
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("file_missing", first_of_second)]
    assert sealed[1].name in detail(report, "file_missing")
    sealed[1].write_bytes(kept)

    first = lines(sealed[0])
    sealed[0].write_bytes(b"".join(first[:-1]))  # the tail of a sealed file
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("tail_cut", first_of_second - 1)]
    sealed[0].write_bytes(b"".join(first))

    forged = rechain([{**r, "actor": "cli:mallory"} for r in records(sealed[0])])
    write_records(sealed[0], forged)  # a sealed file replaced by a valid chain
    code, report = verify(config)
    assert code == 1 and ("replaced", first_of_second - 1) in open_problems(report)
    sealed[0].write_bytes(b"".join(first))

    for path in [*sealed, tmp_path / "audit.jsonl"]:
        path.unlink()  # all of it
    code, report = verify(config)
    assert code == 1 and open_problems(report) == [("file_missing", 1)]
