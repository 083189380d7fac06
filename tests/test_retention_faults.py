"""Retention under faults: a crash at every step boundary of purge, migration and thinning,
`kill -9` of the daemon in the middle of its passes, and a volume whose identity file is gone.

What must hold after any of them (docs: ccvault/retention/executor.py): once intent recovery
has run, every catalogued segment has exactly one valid file (its SHA-256 is the row's), no
footage file on a volume is uncatalogued, no intent is left, held and young footage is
untouched byte for byte, reconcile has nothing to repair, and the next pass leaves nothing
expired behind while the audit chain stays intact.

The CLI commands after a crash run in one warm `ccvault` session process (tests/crash_step.py),
each through `ccvault.cli.main` with its own fresh App, as a new process would: it saves the
interpreter start per command and keeps the file inside its time budget.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccvault.timefmt import utc_text
from tests.conftest import REPO, write_config
from tests.retention_seed import DAY_MS, seed

HOUR_MS = 3_600_000
MIN_MS = 60_000
IDENTITY = ".ccvault-volume.json"
STEPS = [f"{kind}.{step}" for kind, steps in (
    ("delete", ("intent", "unlinked", "cleared")),
    ("migrate", ("intent", "copied", "switched", "source_deleted", "cleared")),
    ("thin", ("intent", "copied", "switched", "source_deleted", "cleared")),
) for step in steps]
HELPER = [sys.executable, "-m", "tests.crash_step"]


# --- Helpers: a warm CLI session, the store on disk, the invariants --------------------------


class Session:
    """`ccvault` commands through tests/crash_step.py's session mode (see its docstring)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([*HELPER, "session"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=REPO)

    def run(self, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(["--config", str(config), *args]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"ccvault session died ({self.proc.poll()}) running {args}"
        reply = json.loads(line)
        return subprocess.CompletedProcess(["ccvault", *args], reply["rc"], reply["stdout"],
                                           reply["stderr"])

    def json(self, config: Path, *args: str, ok: tuple[int, ...] = (0,)) -> Any:
        result = self.run(config, *args, "--json")
        assert result.returncode in ok, (args, result.returncode, result.stderr[-3000:])
        return json.loads(result.stdout)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def cli() -> Iterator[Session]:
    session = Session()
    yield session
    session.close()


def _config(root: Path, retention: str, volumes: list[dict[str, Any]],
            cameras: tuple[str, ...] = ("door",)) -> Path:
    config = write_config(root, [{"name": c, "url": "demo://", "enabled": False}
                                 for c in cameras], volumes=volumes)
    config.write_text(config.read_text() + "\n[retention]\n" + retention)
    return config


def _volume(root: Path, name: str, role: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "path": str(root / name), "role": role, "reserve_free_bytes": 0,
            "reserve_free_percent": 0, **extra}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Row:
    volume: str
    path: str
    sha256: str
    state: str


def _rows(catalog: Path) -> dict[int, Row]:
    with contextlib.closing(sqlite3.connect(catalog)) as conn:
        return {r[0]: Row(*r[1:]) for r in conn.execute(
            "SELECT s.id, v.name, s.path, s.sha256, s.state FROM segments s"
            " JOIN volumes v ON v.id = s.volume_id")}


def _intents(catalog: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(catalog)) as conn:
        return conn.execute("SELECT * FROM intents").fetchall()


def _footage_files(root: Path) -> set[str]:
    """Footage files on a volume, as reconcile sees them: no identity, dot files, quarantine."""
    out = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] != "quarantine" and not any(
                part.startswith(".") for part in rel.parts):
            out.add(str(rel))
    return out


def _check_store(catalog: Path, roots: dict[str, Path]) -> dict[int, Row]:
    """Exactly one valid, catalogued copy of everything: every row's file exists and hashes
    to the row; no footage file is uncatalogued; no intent is left. Returns the rows."""
    rows = _rows(catalog)
    assert _intents(catalog) == []
    for seg_id, row in rows.items():
        assert row.state == "ok", (seg_id, row)
        path = roots[row.volume] / row.path
        assert path.is_file(), f"segment {seg_id}: {path} is gone"
        assert _sha(path) == row.sha256, f"segment {seg_id}: {path} does not match its row"
    catalogued = {(r.volume, r.path) for r in rows.values()}
    for name, root in roots.items():
        stray = {(name, f) for f in _footage_files(root)} - catalogued
        assert not stray, f"uncatalogued files: {sorted(stray)}"
    return rows


def _reconcile_clean(cli: Session, config: Path) -> None:
    report = cli.json(config, "reconcile")
    assert {k: v for k, v in report.items() if k != "ingested"} == {
        "adopted": [], "duplicates": [], "quarantined": [], "missing": []}, report


def _audited(cli: Session, config: Path, action: str) -> list[int]:
    """Segment ids in the audit records of an action, one entry per mention."""
    return [s["id"] for r in cli.json(config, "audit", "list", "--action", action)
            for s in r["details"]["segments"]]


def _hold(cli: Session, config: Path, camera: str, from_ms: int, to_ms: int) -> int:
    result = cli.run(config, "hold", "add", "--camera", camera, "--from", utc_text(from_ms),
                     "--to", utc_text(to_ms), "--reason", "x")
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


# --- 1. A crash at every step boundary ------------------------------------------------------


@dataclass(frozen=True)
class Original:
    id: int
    kind: str  # expired | held | thin | migrate | young
    path: str  # relative to the hot volume
    sha256: str


@pytest.fixture(scope="module")
def crash_template(tmp_path_factory: pytest.TempPathFactory,
                   cli: Session) -> tuple[Path, list[Original]]:
    """One seeded store, copied for every step: hot + archive, `hot_days = 1`,
    `thin_after_days = 1`; a pass deletes 4 expired idle segments, thins 2 idle ones 3 days
    old and migrates 2 with activity 3 days old, and keeps a held expired one and 2 young ones.
    """
    root = tmp_path_factory.mktemp("template")
    config = _config(root, "hot_days = 1\nthin_after_days = 1\n",
                     [_volume(root, "hot", "hot"), _volume(root, "archive", "archive")])
    now = int(time.time() * 1000)
    plan = ([("expired", now - 20 * DAY_MS + i * HOUR_MS, False) for i in range(4)]
            + [("held", now - 20 * DAY_MS + 5 * HOUR_MS, False)]
            + [("thin", now - 3 * DAY_MS + i * HOUR_MS, False) for i in range(2)]
            + [("migrate", now - 3 * DAY_MS + (3 + i) * HOUR_MS, True) for i in range(2)]
            + [("young", now - (2 - i) * HOUR_MS, False) for i in range(2)])
    seeded = seed(config, [{"camera": "door", "start_ms": start, "activity": activity}
                           for _kind, start, activity in plan],
                  tmp_path_factory.mktemp("cache"))
    held = seeded[4]
    _hold(cli, config, "door", held.start_ms - MIN_MS, held.end_ms + MIN_MS)
    originals = [Original(s.id, kind, str(s.path.relative_to(root / "hot")), _sha(s.path))
                 for (kind, _start, _activity), s in zip(plan, seeded, strict=True)]
    return root, originals


def _copy_store(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    config = dest / "ccvault.toml"
    config.write_text(config.read_text().replace(str(template), str(dest)))
    return config


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_every_step_boundary(step: str, crash_template, tmp_path: Path,
                                      cli: Session) -> None:
    template, originals = crash_template
    root = tmp_path / "store"
    config = _copy_store(template, root)
    catalog = root / "catalog.sqlite"
    roots = {"hot": root / "hot", "archive": root / "archive"}
    by_kind: dict[str, list[Original]] = {}
    for o in originals:
        by_kind.setdefault(o.kind, []).append(o)

    crashed = subprocess.run([*HELPER, "crash", str(config), step], capture_output=True,
                             text=True, cwd=REPO, timeout=120)
    assert crashed.returncode == -9, (crashed.returncode, crashed.stdout[-2000:],
                                      crashed.stderr[-2000:])
    # Until `.cleared`, the crash leaves the batch's intents for start-up to follow.
    assert bool(_intents(catalog)) == (not step.endswith(".cleared")), _intents(catalog)

    # Restart: reconcile recovers the intents first, then finds nothing to repair.
    _reconcile_clean(cli, config)
    _reconcile_clean(cli, config)
    rows = _check_store(catalog, roots)

    kind, _, at = step.partition(".")
    switched = at in ("switched", "source_deleted", "cleared")
    for o in by_kind["expired"]:  # the delete batch runs first: its rows went at its intent
        assert o.id not in rows and not (roots["hot"] / o.path).exists()
    for o in by_kind["held"] + by_kind["young"]:
        assert rows[o.id] == Row("hot", o.path, o.sha256, "ok")
    for o in by_kind["thin"]:  # thinned before the migration batch, which then takes them
        row = rows[o.id]
        if kind == "migrate" or (kind == "thin" and switched):
            moved = kind == "migrate" and switched
            assert (row.volume, row.path) == ("archive" if moved else "hot",
                                              o.path.removesuffix(".mp4") + "-k.mp4")
            assert row.sha256 != o.sha256 and not (roots["hot"] / o.path).exists()
        else:
            assert row == Row("hot", o.path, o.sha256, "ok")
    for o in by_kind["migrate"]:
        moved = kind == "migrate" and switched
        assert rows[o.id] == Row("archive" if moved else "hot", o.path, o.sha256, "ok")

    # The next pass finishes the work; nothing expired survives; the audit chain holds.
    done = cli.json(config, "purge")
    assert done["failed"] == 0, done
    plan = cli.json(config, "purge", "--dry-run")
    assert [a for a in plan["actions"] if a["action"] == "delete"] == []
    rows = _check_store(catalog, roots)
    for o in by_kind["expired"]:
        assert o.id not in rows
    for o in by_kind["held"] + by_kind["young"]:
        assert rows[o.id] == Row("hot", o.path, o.sha256, "ok")
        assert _sha(roots["hot"] / o.path) == o.sha256
    for o in by_kind["thin"]:
        assert rows[o.id].path.endswith("-k.mp4") and rows[o.id].sha256 != o.sha256
    for o in by_kind["migrate"]:
        assert rows[o.id] == Row("archive", o.path, o.sha256, "ok")
    # Each purge, thin and migration is on record exactly once: none lost, none doubled.
    assert sorted(_audited(cli, config, "purge")) == sorted(o.id for o in by_kind["expired"])
    assert sorted(_audited(cli, config, "thin")) == sorted(o.id for o in by_kind["thin"])
    assert set(_audited(cli, config, "migrate")) >= {o.id for o in by_kind["migrate"]}
    verify = cli.run(config, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
