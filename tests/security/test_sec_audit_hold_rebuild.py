"""Issue 14, item 3: holds are rebuilt only from a verified chain.

The realistic setting: an older catalog is restored, and `hold rebuild` brings back the holds
the audit log has. A forged line — edited in place, or chained on at the end — must not be
replayed: rebuild verifies first and refuses naming the first bad line, unless `--until-seq N`
stops before it (and that is audited).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import cli_json, run_cli
from tests.security.audit_tamper import (
    add_holds,
    backup,
    encode,
    forged_record,
    hold_rows,
    installation,
    records,
    restore_catalog,
    write_records,
)


def restored(tmp_path: Path) -> tuple[Path, list[dict]]:
    """Two holds, then the catalog from before them put back: the log (signed) has them."""
    config = installation(tmp_path)
    old = backup(config, tmp_path / "bk")  # 2
    add_holds(config, 1, "burglary")  # 3
    add_holds(config, 1, "fire")  # 4
    backup(config, tmp_path / "bk2")  # 5, signed
    restore_catalog(config, Path(old["catalog"]))
    assert hold_rows(config) == []
    return config, records(tmp_path / "audit.jsonl")


def test_hold_rebuild_refuses_a_line_edited_in_place_and_names_it(tmp_path: Path) -> None:
    config, genuine = restored(tmp_path)
    edited = {**genuine[3], "details": {**genuine[3]["details"], "from_ms": 0, "to_ms": 1}}
    write_records(tmp_path / "audit.jsonl", [*genuine[:3], edited, genuine[4]])
    for argv in (("hold", "rebuild"), ("hold", "rebuild", "--dry-run")):
        refused = run_cli(config, *argv)
        assert refused.returncode == 1, refused.stderr
        assert "line 4" in refused.stderr and "--until-seq 3" in refused.stderr
    assert hold_rows(config) == []  # nothing replayed, not even the good hold before it

    too_far = run_cli(config, "hold", "rebuild", "--until-seq", "4")
    assert too_far.returncode == 1 and "line 4" in too_far.stderr
    done = run_cli(config, "hold", "rebuild", "--until-seq", "3", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"hold": 1, "restored": "hold"}]
    assert hold_rows(config) == [(1, "burglary")]
    [audited] = cli_json(config, "audit", "list", "--action", "hold.rebuild")
    assert audited["details"]["until_seq"] == 3 and audited["details"]["restored"] == 1


def test_hold_rebuild_refuses_forged_records_chained_after_the_head(tmp_path: Path) -> None:
    config, genuine = restored(tmp_path)
    log = tmp_path / "audit.jsonl"
    add = {**genuine[2]["details"], "id": 7, "reason": "forged", "from_ms": 0, "to_ms": 1}
    forged = forged_record(genuine[-1], "hold.add", add)
    release = forged_record(forged, "hold.release", {"id": 1, "reason": "mallory"})
    with log.open("ab") as f:
        f.write(encode(forged) + encode(release))
    refused = run_cli(config, "hold", "rebuild")
    assert refused.returncode == 1 and "line 6" in refused.stderr, refused.stderr
    assert hold_rows(config) == []

    done = run_cli(config, "hold", "rebuild", "--until-seq", "5")
    assert done.returncode == 0, done.stderr
    assert hold_rows(config) == [(1, "burglary"), (2, "fire")]  # no hold 7, hold 1 not released


def test_hold_rebuild_never_replays_a_record_that_did_not_commit(tmp_path: Path) -> None:
    """One record past the head is what a crash between append and commit leaves; its action
    was rolled back, so rebuild must not redo it, whoever wrote it."""
    config, _ = restored(tmp_path)
    assert run_cli(config, "hold", "rebuild").returncode == 0
    log = tmp_path / "audit.jsonl"
    last = records(log)[-1]
    with log.open("ab") as f:
        f.write(encode(forged_record(last, "hold.release", {"id": 2, "reason": "mallory"})))
    with_cut = run_cli(config, "hold", "rebuild", "--json")
    assert with_cut.returncode == 0 and json.loads(with_cut.stdout) == []
    assert [h["state"] for h in cli_json(config, "hold", "list")] == ["active", "active"]


def test_hold_rebuild_is_not_fooled_by_a_forged_not_committed_claim(tmp_path: Path) -> None:
    """`audit.uncommitted` makes rebuild skip a record; a forged one naming a genuine hold
    must not make that hold vanish silently."""
    config, genuine = restored(tmp_path)
    claim = {"seq": 4, "hash": genuine[3]["hash"], "action": "hold.add"}  # the "fire" hold
    with (tmp_path / "audit.jsonl").open("ab") as f:
        f.write(encode(forged_record(genuine[-1], "audit.uncommitted", claim)))
    refused = run_cli(config, "hold", "rebuild")
    assert refused.returncode == 1 and "line 6" in refused.stderr, refused.stderr
    assert hold_rows(config) == []
    done = run_cli(config, "hold", "rebuild", "--until-seq", "5")
    assert done.returncode == 0, done.stderr
    assert hold_rows(config) == [(1, "burglary"), (2, "fire")]
